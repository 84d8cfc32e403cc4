"""The image's roles (gomodel/roles.py) without Docker: web and worker refuse to start on unapplied
migrations with a clear message, a manage.py command runs as itself, the health check per role."""

import os
import subprocess
import sys
from pathlib import Path

from gomodel import roles

REPO = Path(__file__).resolve().parents[2]


def env_for(tmp_path, **extra):
    return {"PATH": os.environ["PATH"], "GOMODEL_VAR_DIR": str(tmp_path), "GOMODEL_ENV_FILE": "",
            "DJANGO_SETTINGS_MODULE": "gomodel.settings", "MIGRATIONS_WAIT": "0", **extra}


def test_web_refuses_to_start_on_an_unmigrated_database(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gomodel.roles", "web"], cwd=REPO, env=env_for(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "refusing to start: the database has unapplied migrations" in result.stderr
    assert "migrate" in result.stderr


def test_check_migrations_after_migrate(tmp_path):
    env = env_for(tmp_path)
    manage = [sys.executable, "manage.py"]
    assert subprocess.run([*manage, "check_migrations"], cwd=REPO, env=env, capture_output=True).returncode == 3
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=REPO, env=env, check=True, timeout=300)
    assert subprocess.run([*manage, "check_migrations"], cwd=REPO, env=env, capture_output=True).returncode == 0


def test_a_database_that_does_not_answer_is_named(tmp_path):
    env = env_for(tmp_path, DATABASE_URL="postgres://nobody:x@127.0.0.1:1/none")
    result = subprocess.run([sys.executable, "-m", "gomodel.roles", "worker"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "refusing to start: the database does not answer" in result.stderr


def test_anything_else_is_a_manage_py_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gomodel.roles", "check"], cwd=REPO, env=env_for(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_healthcheck_passes_for_roles_without_http(tmp_path, monkeypatch):
    monkeypatch.setattr(roles, "ROLE_FILE", tmp_path / "role")
    (tmp_path / "role").write_text("worker\n")
    assert roles.healthcheck() == 0
    (tmp_path / "role").write_text("web\n")
    monkeypatch.setenv("PORT", "1")  # nothing listens there
    assert roles.healthcheck() == 1
