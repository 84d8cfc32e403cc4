"""The container image's entry point (`ENTRYPOINT ["python3", "-m", "gomodel.roles"]`): one image,
several roles, chosen by the command.

  web [ARGS]     the ASGI server (uvicorn; GOMODEL_SERVER=granian if installed) on HOST:PORT with
                 WEB_CONCURRENCY workers (default: one per core); ARGS go to the server
  worker [ARGS]  a Celery worker that runs the usage drain and the other tasks (no beat); ARGS go to Celery
  beat [ARGS]    Celery beat, the schedule of those tasks: exactly one per deployment
  migrate        `manage.py migrate`, then the providers of the environment (`sync_providers`); exits
  all            the whole stack in one container, as `make run` (gomodel.supervisor)
  healthcheck    the image's HEALTHCHECK: GET /health for web and all, nothing to check for the others
  anything else  a manage.py command: `docker compose run --rm web create_tenant acme`

web and worker never migrate: they wait up to MIGRATIONS_WAIT seconds (120) for the migrate role, then
refuse to start, naming the unapplied migrations. Like the supervisor, this module imports neither
Django nor Celery: each role replaces this process with its own (exec), so signals reach it directly.
"""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gomodel import dotenv, supervisor

ROLES = ("web", "worker", "beat", "migrate", "all")
ROLE_FILE = Path("/tmp/gomodel-role")  # which role this container runs, for `healthcheck`
MIGRATIONS_PENDING, DATABASE_DOWN = 3, 4  # exit codes of `manage.py check_migrations`


def log(message: str) -> None:
    print(f"[gomodel {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def manage_argv(*args: str) -> list[str]:
    return [sys.executable, str(supervisor.BASE_DIR / "manage.py"), *args]


def wait_for_migrations(timeout: float | None = None, pause: float = 2.0) -> bool:
    """True once the database answers and every migration is applied; False (after logging why)
    when that is still not so after `timeout` seconds."""
    if timeout is None:
        timeout = float(os.environ.get("MIGRATIONS_WAIT") or 120)
    deadline = time.monotonic() + timeout
    said = None
    while True:
        result = subprocess.run(manage_argv("check_migrations"), capture_output=True, text=True)
        if result.returncode == 0:
            return True
        detail = (result.stdout + result.stderr).strip().splitlines()
        reason = "pending" if result.returncode == MIGRATIONS_PENDING else "database"
        if time.monotonic() >= deadline:
            if reason == "pending":
                log("refusing to start: the database has unapplied migrations "
                    f"({', '.join(detail[-5:])}). Run the migrate role first "
                    "(`docker compose run --rm migrate`, or `manage.py migrate`).")
            else:
                log(f"refusing to start: the database does not answer ({detail[-1] if detail else 'no detail'}).")
            return False
        if reason != said:
            log("waiting for the migrate role: unapplied migrations" if reason == "pending"
                else "waiting for the database to answer")
            said = reason
        time.sleep(pause)


def metrics_dir() -> str:
    """A private, empty PROMETHEUS_MULTIPROC_DIR for this container's processes (as `make run` does)."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or "/tmp/gomodel-prometheus")
    supervisor.fresh_private_dir(path)
    return str(path)


def web_argv(extra: list[str]) -> list[str]:
    server = os.environ.get("GOMODEL_SERVER", "uvicorn")
    workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
    host = os.environ.get("HOST") or "0.0.0.0"  # a container's port is reached from outside it
    return supervisor.checked(supervisor.server_command(server, supervisor.port(), workers, host)) + extra


def worker_argv(extra: list[str]) -> list[str]:
    return [*supervisor.celery_command(None), *extra]


def beat_argv(extra: list[str]) -> list[str]:
    schedule = supervisor.var_dir() / "celerybeat-schedule"
    return [os.path.join(os.path.dirname(sys.executable), "celery"), "-A", "gomodel.celery:app", "beat",
            "--loglevel", "INFO", "-s", str(schedule), *extra]


def healthcheck() -> int:
    role = ROLE_FILE.read_text().strip() if ROLE_FILE.exists() else "web"
    if role not in ("web", "all"):
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{supervisor.port()}/health", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)  # var/: the database, the spool and the secrets are the service's alone
    dotenv.load()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gomodel.settings")
    role, extra = (argv[0], argv[1:]) if argv else ("web", [])
    if role in ("healthcheck", "health"):
        return healthcheck()
    if role in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if role not in ROLES:  # a manage.py command
        os.execv(sys.executable, manage_argv(*argv))
    try:
        ROLE_FILE.write_text(role + "\n")
    except OSError:
        pass
    if role == "migrate":
        for step in (("migrate", "--no-input"), ("sync_providers",)):
            code = subprocess.call(manage_argv(*step))
            if code != 0:
                log(f"manage.py {' '.join(step)} exited with code {code}")
                return code
        return 0
    if role == "all":
        os.execv(sys.executable, [sys.executable, "-m", "gomodel.supervisor", *extra])
    if role in ("web", "worker") and not wait_for_migrations():
        return 1
    if role == "web":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir()
        command = web_argv(extra)
        log(f"web: {os.path.basename(command[0])} on {os.environ.get('HOST') or '0.0.0.0'}:{supervisor.port()}")
    elif role == "worker":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir()
        command = worker_argv(extra)
    else:
        command = beat_argv(extra)
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
