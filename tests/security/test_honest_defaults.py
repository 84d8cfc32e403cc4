"""#19, honest defaults: `make run` binds loopback unless HOST says otherwise (the image: every interface),
/v1 honours DJANGO_ALLOWED_HOSTS like the admin, a .env file is read (the environment wins), var/ is
0700 and what it holds 0600, and Celery's root warning is said once by `make run`, not at every start."""

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from gomodel import dotenv, roles, supervisor
from gomodel.gateway.app import gateway_app

REPO = Path(__file__).resolve().parents[2]


def call(path: str, host: bytes | None, method="GET"):
    """One request to the /v1 ASGI app; (status, decoded body)."""
    headers = [(b"host", host)] if host is not None else []
    scope = {"type": "http", "method": method, "path": path, "headers": headers, "query_string": b"",
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080), "scheme": "http"}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(gateway_app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], orjson.loads(body)


# -- bind address -------------------------------------------------------------------------------------------

def test_make_run_binds_loopback_unless_HOST_says_otherwise(monkeypatch):
    monkeypatch.delenv("HOST", raising=False)
    assert supervisor.host() == "127.0.0.1"
    command = supervisor.server_command("uvicorn", 8080, 2, supervisor.host())
    assert command[command.index("--host") + 1] == "127.0.0.1"
    monkeypatch.setenv("HOST", "0.0.0.0")
    command = supervisor.server_command("granian", 8080, 2, supervisor.host())
    assert command[command.index("--host") + 1] == "0.0.0.0"


def test_the_image_web_role_binds_every_interface(monkeypatch):
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    command = roles.web_argv([])
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--workers") + 1] == "3"


# -- /v1 and DJANGO_ALLOWED_HOSTS -------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions", "/p/openai/v1/models"])
def test_v1_refuses_a_host_outside_allowed_hosts(path, settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    status, body = call(path, b"gateway.example.com", "POST" if "chat" in path else "GET")  # /p/: passthrough
    assert status == 400
    assert body["error"]["code"] == "disallowed_host"


def test_v1_answers_an_allowed_host_with_or_without_port(settings):
    settings.ALLOWED_HOSTS = ["localhost", ".example.org"]
    for host in (b"localhost:8080", b"LOCALHOST", b"api.example.org"):
        status, body = call("/v1/models", host)
        assert status == 401, (host, body)  # on to authentication
    status, _ = call("/health", b"gateway.example.com")  # probes name a container or an IP
    assert status == 200


# -- .env ---------------------------------------------------------------------------------------------------

def run_settings(tmp_path, code: str, **env):
    base = {"PATH": os.environ["PATH"], "GOMODEL_VAR_DIR": str(tmp_path / "var"),
            "DJANGO_SETTINGS_MODULE": "gomodel.settings"}
    return subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + code], cwd=REPO,
                          env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_a_dot_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "my.env"
    env_file.write_text("# a comment\nMETRICS_TOKEN=from-file\nexport RETRY_MAX='7'\n"
                        "JSON_MAX_DEPTH=9  # inline comment\nGOMODEL_MASTER_KEY=\"from file\"\n")
    code = ("from django.conf import settings as s; "
            "print(s.METRICS_TOKEN, s.RETRY_MAX, s.JSON_MAX_DEPTH, s.GOMODEL_MASTER_KEY, sep='|')")
    result = run_settings(tmp_path, code, GOMODEL_ENV_FILE=str(env_file), GOMODEL_MASTER_KEY="from-env")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-file|7|9|from-env"


def test_the_project_root_dot_env_is_the_default(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("PORT=9999\nHOST=0.0.0.0\n")
    monkeypatch.setattr(dotenv, "BASE_DIR", tmp_path)
    environ = {"HOST": "127.0.0.1"}
    assert dotenv.load(environ=environ) == {"PORT": "9999"}
    assert environ == {"HOST": "127.0.0.1", "PORT": "9999"}
    assert dotenv.load(environ={"GOMODEL_ENV_FILE": ""}) == {}


# -- var/ permissions ---------------------------------------------------------------------------------------

def test_var_is_0700_and_its_files_0600(tmp_path):
    var = tmp_path / "var"
    code = ("from django.db import connection\n"
            "with connection.cursor() as c:\n"
            "    c.execute('CREATE TABLE t (x int)')\n"
            "    c.execute('INSERT INTO t VALUES (1)')\n")
    result = run_settings(tmp_path, code)  # the process's umask is the usual 022: settings must not rely on it
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in var.iterdir() if p.is_file()}
    assert "gomodel.sqlite3" in files and "secret_key" in files
    assert all(mode == 0o600 for mode in files.values()), files


def test_an_existing_world_readable_var_is_made_private(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    os.chmod(var, 0o755)
    (var / "gomodel.sqlite3").touch(mode=0o644)
    os.chmod(var / "gomodel.sqlite3", 0o644)
    assert run_settings(tmp_path, "pass").returncode == 0
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    assert stat.S_IMODE((var / "gomodel.sqlite3").stat().st_mode) == 0o600


def test_make_run_makes_its_files_private(tmp_path, monkeypatch):
    seen = {}

    def fake_run(self, server, workers, celery=True):
        seen["umask"] = os.umask(0o077)
        supervisor.fresh_private_dir(tmp_path / "prometheus")

    monkeypatch.setattr(supervisor.Supervisor, "run", fake_run)
    old = os.umask(0o022)
    try:
        assert supervisor.main([]) == 0
    finally:
        os.umask(old)
    assert seen["umask"] == 0o077  # Redis's files, the metrics' .db files, the spool: 0600
    assert stat.S_IMODE((tmp_path / "prometheus").stat().st_mode) == 0o700


# -- Celery and root ----------------------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="Celery warns only when run as root")
@pytest.mark.parametrize("notice_given, expected", [("1", "0"), ("", "1")])
def test_celery_root_warning_is_said_once_by_make_run(notice_given, expected):
    code = ("import warnings\nimport gomodel.celery\nfrom celery import platforms\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    platforms.check_privileges({'json'})\n"
            "print(sum('superuser privileges' in str(w.message) for w in caught))\n")
    env = {**os.environ, "GOMODEL_ROOT_NOTICE_GIVEN": notice_given}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected


def test_the_worker_never_runs_beat_in_the_image_and_make_run_does():
    assert "-s" not in roles.worker_argv([])
    assert "-s" in supervisor.celery_command(Path("/tmp/x"))
    assert "beat" in roles.beat_argv([])
