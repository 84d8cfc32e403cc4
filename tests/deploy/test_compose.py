"""The deployment, tested for real (`make test-deploy`; .ci/run runs it): the image built on a base image
this test makes itself (no registry here: debootstrap of bookworm + python3, `docker import`), the
compose stack of compose.yaml (PostgreSQL, Redis with AOF, migrate, two web replicas behind nginx, a
Celery worker, beat), then through nginx: 500 mixed requests (JSON, streams, streams the client cuts)
while one web replica and the worker are SIGKILLed (their restart policy brings them back), and then:
every answered request is in the usage events once and the roll-ups add up to the events, an RPM limit
is exact across the two replicas, the live feed answers through nginx (WebSocket).

PostgreSQL, Redis and nginx come from Debian's packages on the same base (tests/deploy/infra), as this
network cannot pull their official images; compose.yaml names the official ones by default.

Skipped (loudly) only where no Docker engine can run; GOMODEL_TEST_DEPLOY=1 (set by `make test-deploy`)
is needed for it to run at all, so that `make test` does not build images.
"""

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "var" / "deploy"
PROJECT = "gomodel-deploy-test"
IMAGE = "gomodel:test-deploy"
INFRA_IMAGE = "gomodel-test-infra:bookworm"
TOTAL_REQUESTS = 500
CONCURRENCY = 12

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def log(message):
    print(f"[test-deploy {time.strftime('%H:%M:%S')}] {message}", flush=True)


def docker_problem() -> str | None:
    """Why no Docker engine can be used here, or None."""
    if not shutil.which("docker"):
        return "no docker client on PATH (apt-get install docker.io)"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"no Docker engine answers (start dockerd): {info.stderr.strip()[-300:]}"
    probe = subprocess.run(["docker", "run", "--rm", "--network", "none", "gomodel-base:bookworm", "true"],
                           capture_output=True, text=True) if image_exists("gomodel-base:bookworm") else None
    if probe is not None and probe.returncode != 0:
        return f"the engine cannot run a container: {probe.stderr.strip()[-300:]}"
    return None


def image_exists(name) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor docker-compose is installed (apt-get install docker-compose)")


def run(command, timeout=900, check=True, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pip_build_files():
    """This machine's pip configuration and CA bundle, for the image's builder stage (deploy/pip/)."""
    target = ROOT / "deploy" / "pip"
    conf = Path(os.environ.get("PIP_CONFIG_FILE") or "/etc/pip.conf")
    if conf.is_file():
        shutil.copyfile(conf, target / "pip.conf")
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("REQUESTS_CA_BUNDLE"),
                      os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            shutil.copyfile(candidate, target / "ca.crt")
            break


def build_images() -> float:
    started = time.monotonic()
    base = run([str(ROOT / "deploy" / "base-image.sh")], timeout=1200).stdout.strip().splitlines()[-1]
    log(f"base image {base} ({time.monotonic() - started:.0f}s)")
    pip_build_files()
    args = ["--network", "host", "--build-arg", f"BASE_IMAGE={base}"]
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        if os.environ.get(name):
            args += ["--build-arg", f"{name}={os.environ[name]}"]
    run(["docker", "build", "-q", *args, "-t", IMAGE, "."], timeout=1200)
    log(f"image {IMAGE} built ({time.monotonic() - started:.0f}s)")
    run(["docker", "build", "-q", "--network", "host", "--build-arg", f"BASE_IMAGE={base}", "-t", INFRA_IMAGE,
         "tests/deploy/infra"], timeout=1200)
    log(f"infra image {INFRA_IMAGE} built ({time.monotonic() - started:.0f}s)")
    return time.monotonic() - started


class Stack:
    def __init__(self):
        self.compose = compose_command()
        self.port = free_port()
        self.env_file = WORK / "test.env"
        self.master = "sk_master_" + secrets.token_hex(16)
        self.metrics_token = "metrics_" + secrets.token_hex(16)

    def write_env(self):
        WORK.mkdir(parents=True, exist_ok=True)
        values = {
            # compose's own (interpolation), then what every gateway container reads through env_file
            "COMPOSE_PROJECT_NAME": PROJECT,
            "GOMODEL_IMAGE": IMAGE,
            "POSTGRES_IMAGE": INFRA_IMAGE, "REDIS_IMAGE": INFRA_IMAGE, "NGINX_IMAGE": INFRA_IMAGE,
            "GOMODEL_ENV_FILE": str(self.env_file),
            "GOMODEL_HTTP_PORT": str(self.port),
            "POSTGRES_PASSWORD": secrets.token_hex(12),
            "WEB_CONCURRENCY": "1",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "GOMODEL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "GOMODEL_MASTER_KEY": self.master,
            "METRICS_TOKEN": self.metrics_token,
            "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
            "OPENAI_API_KEY": "sk-upstream-" + secrets.token_hex(8),
            "OPENAI_BASE_URL": "http://upstream:9000/v1",
            "USAGE_FLUSH_INTERVAL": "1",
            "USAGE_CLAIM_IDLE_MS": "3000",  # a killed worker's entries are reclaimed after 3 s, not 60
            "USAGE_DRAIN_LOCK_TTL": "5",  # and its drain lock is free after 5 s, not 60 (refreshed per batch)
            "LOG_LEVEL": "WARNING",
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        self.env_file.chmod(0o600)

    def __call__(self, *args, timeout=900, check=True):
        # Only the env file sets compose's variables (the test process's own environment, pytest.ini's
        # included, would win over it).
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG")}
        return run([*self.compose, "--env-file", str(self.env_file), "-p", PROJECT, "-f", "compose.yaml",
                    "-f", "tests/deploy/compose.test.yaml", *args], timeout=timeout, check=check, env=env)

    def container(self, service) -> str:
        ids = self("ps", "-q", service).stdout.split()
        assert ids, f"no container for {service}"
        return ids[0]

    def inspect(self, service, fmt) -> str:
        return run(["docker", "inspect", "-f", fmt, self.container(service)]).stdout.strip()

    def psql(self, sql) -> list[str]:
        out = self("exec", "-T", "postgres", "psql", "-U", "gomodel", "-d", "gomodel", "-At", "-c", sql).stdout
        return [line for line in out.splitlines() if line.strip()]

    def manage(self, *args) -> str:
        return self("run", "--rm", "--no-deps", "web1", *args, timeout=300).stdout

    def down(self):
        self("down", "-v", "--remove-orphans", "-t", "5", timeout=300, check=False)

    def main_pid(self, service) -> int:
        return int(self.inspect(service, "{{.State.Pid}}"))

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"


def wait_until(predicate, timeout, what, pause=1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # noqa: BLE001 (still starting)
            last = exc
        time.sleep(pause)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def healthy(url) -> bool:
    return httpx.get(url, timeout=3).status_code == 200


# ---- the load ---------------------------------------------------------------------------------------------


async def one_request(client, key, kind) -> dict:
    """One request; `answered` when the client got the whole answer it asked for (or cut it itself)."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": f"hello {uuid.uuid4()}"}]}
    result = {"kind": kind, "answered": False, "request_id": None, "status": None, "started": time.monotonic()}
    try:
        if kind == "json":
            response = await client.post("/v1/chat/completions", json=body, headers=headers)
            result["status"] = response.status_code
            result["request_id"] = response.headers.get("x-request-id")
            result["answered"] = response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
        else:
            body["stream"] = True
            if kind == "cut":
                body["model"] = "openai/trickle"
            async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
                result["status"] = response.status_code
                result["request_id"] = response.headers.get("x-request-id")
                if response.status_code == 200:
                    chunks = 0
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            chunks += 1
                            if line == "data: [DONE]":
                                result["answered"] = True
                                break
                            if kind == "cut" and chunks >= 3:
                                result["answered"] = True  # the client hangs up: billed on an estimate
                                break
                else:
                    await response.aread()
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        result["error"] = repr(exc)
        result["answered"] = False
    result["ended"] = time.monotonic()
    return result


async def load(stack, key, kill_at, killed: dict) -> list[dict]:
    # SIGKILL from the host, as the OOM killer would: the restart policy applies (`docker kill` or `stop`
    # would count as an operator's stop). The pids are read first: the kill itself takes no time.
    victims = [stack.main_pid("web1"), stack.main_pid("worker")]
    kinds = ["json"] * 6 + ["stream"] * 3 + ["cut"]
    queue = asyncio.Queue()
    for i in range(TOTAL_REQUESTS):
        queue.put_nowait(kinds[i % len(kinds)])
    results = []

    async def client_loop():
        async with httpx.AsyncClient(base_url=stack.base, timeout=60) as client:
            while not queue.empty():
                kind = queue.get_nowait()
                results.append(await one_request(client, key, kind))
                if len(results) == kill_at and not killed:
                    killed["at"] = time.monotonic()
                    for pid in victims:
                        os.kill(pid, signal.SIGKILL)
                    log(f"{len(results)} requests done: SIGKILLed web1 and the worker")

    await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))
    return results


async def rpm_burst(stack, key, n) -> list[int]:
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as client:
        async def one():
            response = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                         json={"model": "openai/gpt-4o-mini",
                                               "messages": [{"role": "user", "content": "hi"}]})
            return response.status_code
        return await asyncio.gather(*(one() for _ in range(n)))


async def live_feed(stack, key, username, password) -> dict:
    """Log in to the admin through nginx, open the live feed's WebSocket through nginx, make one request,
    and return the feed's event for it."""
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as client:
        page = await client.get("/admin/login/")
        token = client.cookies.get("csrftoken")
        assert token, page.text[:500]
        response = await client.post("/admin/login/?next=/admin/", data={
            "csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"},
            headers={"Referer": f"{stack.base}/admin/login/"})
        assert response.status_code == 302, response.text[:500]
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        ws_url = f"ws://127.0.0.1:{stack.port}/dashboard/ws/live/"
        async with websockets.connect(ws_url, additional_headers={"Cookie": cookie},
                                      origin=f"http://127.0.0.1:{stack.port}") as ws:
            ready = json.loads(await asyncio.wait_for(ws.recv(), 15))
            assert ready["type"] == "ready", ready
            answer = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                       json={"model": "openai/gpt-4o-mini",
                                             "messages": [{"role": "user", "content": "feed"}]})
            assert answer.status_code == 200
            request_id = answer.headers["x-request-id"]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                for event in message.get("events", []):
                    if event.get("request_id") == request_id:
                        return event
    raise AssertionError("the live feed never showed the request")


# ---- the test ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack():
    if os.environ.get("GOMODEL_TEST_DEPLOY") != "1":
        pytest.skip("the deployment test builds images and runs the compose stack: `make test-deploy`")
    problem = docker_problem()
    if problem:
        message = f"DOCKER CANNOT RUN HERE, the deployment test is SKIPPED: {problem}"
        print("\n" + "!" * 100 + f"\n{message}\n" + "!" * 100, flush=True)
        pytest.skip(message)
    started = time.monotonic()
    build_images()
    stack = Stack()
    stack.write_env()
    stack.down()
    stack("up", "-d", "upstream", timeout=300)
    stack("up", "-d", timeout=600)
    wait_until(lambda: healthy(stack.base + "/health"), 180, "nginx -> web /health")
    wait_until(lambda: stack.inspect("web1", "{{.State.Health.Status}}") == "healthy"
               and stack.inspect("web2", "{{.State.Health.Status}}") == "healthy", 180, "both web replicas healthy")
    # nginx marked both replicas failed while they were starting: 20 good answers in a row first.
    wait_until(lambda: all(healthy(stack.base + "/health") for _ in range(20)), 60, "nginx to trust both replicas",
               pause=0.5)
    log(f"stack up ({time.monotonic() - started:.0f}s since the start)")
    try:
        yield stack
    finally:
        if os.environ.get("GOMODEL_TEST_DEPLOY_KEEP") != "1":
            logs = stack("logs", "--no-color", "--tail", "200", check=False)
            (WORK / "compose.log").write_text(logs.stdout + logs.stderr)
            stack.down()
        log(f"test-deploy took {time.monotonic() - started:.0f}s in all")


def test_migrate_ran_once_and_the_roles_are_split(stack):
    assert stack.inspect("migrate", "{{.State.ExitCode}}") == "0"
    assert stack.inspect("worker", "{{.Config.User}}") == "gomodel"  # Celery is not root in the image
    assert run(["docker", "exec", stack.container("worker"), "id", "-u"]).stdout.strip() == "10001"
    # beat runs only in the beat container; the worker runs no beat thread
    worker_cmd = stack.inspect("worker", "{{json .Config.Cmd}}")
    assert json.loads(worker_cmd) == ["worker"]
    # manage.py works in the image: a check, and the migrations all applied
    assert stack("run", "--rm", "--no-deps", "web1", "check_migrations", timeout=300).returncode == 0


def test_load_through_nginx_with_a_replica_and_the_worker_killed(stack):
    stack.manage("create_tenant", "acme")
    key = stack.manage("create_api_key", "acme", "--name", "load").strip().splitlines()[-1]
    assert key.startswith("sk_gom_"), key
    killed = {}
    started = time.monotonic()
    results = asyncio.run(load(stack, key, kill_at=TOTAL_REQUESTS // 3, killed=killed))
    log(f"{len(results)} requests in {time.monotonic() - started:.1f}s; "
        f"{sum(1 for r in results if r['answered'])} answered; statuses "
        f"{sorted({str(r['status']) for r in results})}")
    assert killed, "the kill never happened"
    assert len(results) == TOTAL_REQUESTS
    # The restart policy brought both back (RestartCount counts the daemon's restarts).
    wait_until(lambda: int(stack.inspect("web1", "{{.RestartCount}}")) >= 1
               and stack.inspect("web1", "{{.State.Health.Status}}") == "healthy", 120, "web1 restarted")
    wait_until(lambda: int(stack.inspect("worker", "{{.RestartCount}}")) >= 1
               and stack.inspect("worker", "{{.State.Running}}") == "true", 120, "worker restarted")

    answered = [r for r in results if r["answered"]]
    failed = [r for r in results if not r["answered"]]
    # A request fails only when it was on the killed replica at the kill (nginx retries only connections
    # that were refused, never a request already sent: it would be billed twice).
    assert len(failed) <= 3 * CONCURRENCY, failed[:5]
    assert len(answered) >= TOTAL_REQUESTS - 3 * CONCURRENCY
    # A request in flight at the kill may have been on the killed replica, which records usage after the
    # answer is out (a cut stream: once it notices the hang-up): its event can die with the process. Every
    # other answered request must be recorded, and nothing twice.
    # An answered request's event waits up to USAGE_WRITE_INTERVAL (2 ms) for its batch to Redis (+10 ms); the
    # gateway learns of a client's hang-up when it next writes to it (the fake "trickle": every 50 ms; +200 ms).
    in_flight = [r for r in answered
                 if r["started"] <= killed["at"] <= r["ended"] + (0.2 if r["kind"] == "cut" else 0.01)]
    must = {r["request_id"] for r in answered if r not in in_flight}
    log(f"{len(in_flight)} answered requests were in flight at the kill; {len(must)} must be recorded")
    assert len(in_flight) <= 3 * CONCURRENCY
    assert all(must), "an answered request without x-request-id"

    def drained():
        rows = stack.psql("SELECT request_id FROM accounting_usageevent WHERE tenant_slug = 'acme'")
        return must <= set(rows)
    try:
        wait_until(drained, 120, "every answered request in the usage events", pause=2)
    except AssertionError:
        rows = set(stack.psql("SELECT request_id FROM accounting_usageevent WHERE tenant_slug = 'acme'"))
        missing = [r for r in answered if r["request_id"] in must - rows]
        log(f"{len(missing)} answered requests missing: {missing[:5]}; kill at {killed['at']}")
        log(stack("logs", "--no-color", "--tail", "100", "worker", "web1").stdout[-5000:])
        log(stack("exec", "-T", "redis", "redis-cli", "XINFO", "GROUPS", "gomodel:usage").stdout)
        log(stack("exec", "-T", "redis", "redis-cli", "XLEN", "gomodel:usage").stdout)
        raise
    time.sleep(3)  # one more drain: nothing may arrive twice
    rows = stack.psql("SELECT request_id FROM accounting_usageevent WHERE tenant_slug = 'acme'")
    assert len(rows) == len(set(rows))
    assert must <= set(rows)
    assert len(rows) <= TOTAL_REQUESTS
    [rollup] = stack.psql("SELECT COALESCE(SUM(requests), 0) FROM accounting_usagedaily WHERE tenant_slug = 'acme'")
    assert int(rollup) == len(rows), (rollup, len(rows))
    [tokens_events] = stack.psql("SELECT SUM(total_tokens) FROM accounting_usageevent WHERE tenant_slug = 'acme'")
    [tokens_daily] = stack.psql("SELECT SUM(total_tokens) FROM accounting_usagedaily WHERE tenant_slug = 'acme'")
    assert tokens_events == tokens_daily
    # Both replicas served the load (nginx's log names the upstream of each request).
    upstreams = {upstream for _status, upstream in chat_access_lines(stack)}
    assert len(upstreams) >= 2, upstreams


ACCESS_LINE = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" (\d{3}) .* upstream=([\d.:]+(?:, [\d.:]+)*) ')


def chat_access_lines(stack) -> list[tuple[str, str]]:
    """(status, the upstream address that answered) of each chat request in nginx's access log (after a
    refused connection nginx names both: the last one answered)."""
    lines = stack("logs", "--no-color", "nginx").stdout.splitlines()
    return [(m.group(1), m.group(2).split(", ")[-1]) for m in map(ACCESS_LINE.search, lines) if m]


def test_rpm_limit_is_exact_across_the_replicas(stack):
    key = stack.manage("create_api_key", "acme", "--name", "rpm", "--rpm", "20").strip().splitlines()[-1]
    before = len(chat_access_lines(stack))
    statuses = asyncio.run(rpm_burst(stack, key, 50))
    assert statuses.count(200) == 20, statuses
    assert statuses.count(429) == 30, statuses
    wait_until(lambda: len(chat_access_lines(stack)) >= before + 50, 20, "nginx's access lines", pause=0.5)
    served = chat_access_lines(stack)[before:]
    assert len(served) == 50, stack("logs", "--no-color", "--tail", "60", "nginx").stdout
    assert len({upstream for _status, upstream in served}) == 2  # both replicas counted against one limit


def test_live_feed_through_nginx(stack):
    password = secrets.token_urlsafe(16)
    stack("run", "--rm", "--no-deps", "-e", f"DJANGO_SUPERUSER_PASSWORD={password}", "web1", "createsuperuser",
          "--no-input", "--username", "ops", "--email", "ops@example.com", timeout=300)
    key = stack.manage("create_api_key", "acme", "--name", "feed").strip().splitlines()[-1]
    event = asyncio.run(live_feed(stack, key, "ops", password))
    assert event["tenant"] == "acme"


def test_body_limit_and_allowed_hosts_through_nginx(stack):
    # nginx passes a body up to BODY_SIZE_LIMIT (10 MiB) on to the gateway, and refuses a bigger one itself.
    headers = {"Authorization": "Bearer sk_gom_not_a_key", "Content-Type": "application/json"}
    almost = b'{"model": "x", "pad": "' + b"a" * (9 * 1024 * 1024) + b'"}'
    response = httpx.post(stack.base + "/v1/chat/completions", content=almost, headers=headers, timeout=60)
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
    response = httpx.post(stack.base + "/v1/chat/completions", content=almost + b" " * (2 * 1024 * 1024),
                          headers=headers, timeout=60)
    assert response.status_code == 413
    # The gateway answers a foreign Host on /v1 with 400.
    response = httpx.get(stack.base + "/v1/models", headers={"Host": "gateway.example.com",
                                                             "Authorization": f"Bearer {stack.master}"})
    assert response.status_code == 400
    response = httpx.get(stack.base + "/v1/models", headers={"Authorization": f"Bearer {stack.master}"})
    assert response.status_code in (200, 401, 403)
