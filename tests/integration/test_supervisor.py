"""`make run`'s supervisor (gomodel/supervisor.py): a child that dies is restarted with backoff and a
log line, a dead billing worker never takes the web server down, Ctrl-C/SIGTERM stops everything,
web first. The load test runs the real supervisor (uvicorn + a Celery worker) against a private Redis
and SIGKILLs its Celery worker twice mid-load."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from accounting.prices.defaults import load_default_prices
from gomodel import supervisor
from tests.accounting import conftest as accounting_fixtures
from tests.accounting.conftest import database_url, free_port, wait_until
from tests.accounting.load import check_events, check_rollups_match_events, run_load, stored_events

ROOT = Path(__file__).resolve().parents[2]
private_redis = accounting_fixtures.private_redis  # a redis-server of the test's own (fixture)


def test_a_child_that_dies_is_restarted_with_growing_backoff(monkeypatch):
    monkeypatch.setattr(supervisor, "BACKOFF_FIRST", 0.05)
    child = supervisor.Child("celery", [sys.executable, "-c", "raise SystemExit(3)"], os.environ.copy())
    child.start()
    child.process.wait(timeout=10)
    delays = []
    for _ in range(3):
        child.check(time.monotonic())  # sees the exit: schedules the restart
        delays.append(child.restart_at - time.monotonic())
        time.sleep(max(0.0, child.restart_at - time.monotonic()))
        child.check(time.monotonic())  # backoff over: started again
        child.process.wait(timeout=10)
    assert child.restarts == 3
    assert delays[0] < delays[1] < delays[2] <= 0.2 + 0.01  # 0.05, 0.1, 0.2


def test_stop_all_stops_web_first_then_celery_then_redis(tmp_path):
    order = tmp_path / "order"
    # Each child appends its name when SIGTERM arrives; the supervisor waits for one before the next.
    script = ("import signal, sys, time\n"
              "def bye(*a):\n    open(sys.argv[2], 'a').write(sys.argv[1] + '\\n'); sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, bye)\nprint('up', flush=True)\ntime.sleep(60)\n")
    sup = supervisor.Supervisor()
    for name in ("redis", "web", "celery"):  # the spawn order of `make run`
        sup.spawn(name, [sys.executable, "-u", "-c", script, name, str(order)], os.environ.copy())
    time.sleep(0.5)  # let the handlers install
    sup.stop_all()
    assert order.read_text().split() == ["web", "celery", "redis"]


def _children(pid: int) -> dict[int, str]:
    """pid -> command line of every descendant of `pid`."""
    found = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == parent:
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    frontier.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _celery_pid(supervisor_pid: int) -> int | None:
    for pid, cmdline in _children(supervisor_pid).items():
        if "celery" in cmdline and "worker" in cmdline:
            return pid
    return None


@pytest.fixture
def flaky(make_provider, upstream):
    return make_provider(name="flaky", base_url=upstream.base_url)


@pytest.mark.e2e
@pytest.mark.slow
def test_celery_killed_twice_under_load_loses_no_request_and_no_usage(private_redis, provider, flaky, tenant_key,
                                                                       tmp_path):
    load_default_prices()
    port = free_port()
    log_path = tmp_path / "supervisor.log"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gomodel.settings", "DATABASE_URL": database_url(),
           "REDIS_URL": private_redis.url, "CELERY_BROKER_URL": private_redis.url, "PORT": str(port),
           "USAGE_STREAM": settings.USAGE_STREAM, "USAGE_SPOOL_PATH": str(settings.USAGE_SPOOL_PATH),
           "USAGE_FLUSH_INTERVAL": "0.3", "USAGE_CLAIM_IDLE_MS": "500", "USAGE_DRAIN_LOCK_TTL": "2",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"), "PYTHONPATH": str(ROOT)}
    (tmp_path / "prometheus").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "gomodel.supervisor", "--workers", "1"], cwd=ROOT, env=env,
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    output = lambda: log_path.read_text(errors="replace")[-4000:]  # noqa: E731
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: "Ctrl-C stops everything" in output() and _celery_pid(proc.pid), 60, 0.2,
                   "the supervisor to start web and celery")
        wait_until(lambda: _port_open(port), 30, 0.1, "the web server")
        kills: list[int] = []
        requests = 400

        def kill_celery():
            pid = wait_until(lambda: _celery_pid(proc.pid), 30, 0.1, "a celery worker to kill")
            os.kill(pid, signal.SIGKILL)
            kills.append(pid)

        async def on_progress(done):
            if done in (requests // 4, requests // 2):  # twice, the traffic goes on
                await asyncio.to_thread(kill_celery)

        outcomes = asyncio.run(run_load(base_url, tenant_key[2], requests, concurrency=16, timeout=90,
                                        on_progress=on_progress))
        assert len(kills) == 2 and kills[0] != kills[1]
        # 0 failed requests: every request got the answer its kind gets (check_events checks each status).
        from accounting.models import UsageEvent

        wait_until(lambda: UsageEvent.objects.count() >= requests, 60, 0.3,
                   f"every event drained by the restarted worker (have {UsageEvent.objects.count()})")
        events = stored_events()
        summary = check_events(outcomes, events)
        check_rollups_match_events()
        assert len(events) == requests
        whole = log_path.read_text(errors="replace")  # the access lines of the load fill the tail
        assert whole.count("celery exited with code -9; restarting it in") == 2, output()
        assert "web exited" not in whole, output()
        print(f"\nsupervisor: celery killed twice; {summary}")

        # A web server killed outright: its orphaned workers are swept off the port, and it comes back.
        web = next(pid for pid, cmd in _children(proc.pid).items() if "uvicorn" in cmd and "spawn" not in cmd)
        os.kill(web, signal.SIGKILL)
        wait_until(lambda: "web exited with code -9; restarting it in" in output(), 10, 0.1, "the web restart")
        wait_until(lambda: _port_open(port) and _health(base_url), 60, 0.2, "the restarted web server")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, output()
    assert not _port_open(port)  # Ctrl-C/SIGTERM stopped the web server too


def _health(base_url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_supervisor_imports_neither_django_nor_celery_nor_redis():
    code = ("import sys, gomodel.supervisor\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'accounting', 'redis')]\n"
            "print(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr



def test_a_server_that_is_not_installed_is_a_clear_error(tmp_path):
    command = [str(tmp_path / "granian"), "gomodel.asgi:application"]
    try:
        supervisor.checked(command)
    except supervisor.SupervisorError as exc:
        assert "granian is not installed" in str(exc) and "requirements-dev.txt" in str(exc)
    else:
        raise AssertionError("a missing server binary must not be started (and restarted forever)")
    assert supervisor.checked(supervisor.server_command("uvicorn", 8080, 1))[0].endswith("uvicorn")
