"""#12 item 8: safe secrets without extra steps. A fresh install gets a random secret key and a separate
encryption key under var/ (0600, reused); the public default secret is refused outside DEBUG; hosts are
local by default; the documented production environment passes `check --deploy` without a warning."""

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gomodel import secrets_files

REPO = Path(__file__).resolve().parents[2]


def run_settings(tmp_path, code: str, **env):
    """Import the settings in a fresh interpreter with only `env` set (plus what Python needs)."""
    base = {"PATH": os.environ["PATH"], "GOMODEL_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "gomodel.settings"}
    return subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + code], cwd=REPO,
                          env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_load_or_create_makes_a_private_file_once(tmp_path):
    path = tmp_path / "s"
    first = secrets_files.load_or_create(path, lambda: "one")
    second = secrets_files.load_or_create(path, lambda: "two")
    assert first == second == "one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_encryption_keys_file_holds_a_fernet_key(tmp_path):
    keys = secrets_files.encryption_keys(tmp_path)
    assert len(keys) == 1 and Fernet(keys[0].encode())
    assert secrets_files.encryption_keys(tmp_path) == keys
    assert stat.S_IMODE((tmp_path / "encryption_keys").stat().st_mode) == 0o600


def test_without_a_secret_key_a_random_one_is_created_and_reused(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY); print(settings.GOMODEL_ENCRYPTION_KEYS[0])"
    first = run_settings(tmp_path, code)
    assert first.returncode == 0, first.stderr
    second = run_settings(tmp_path, code)
    secret, encryption = first.stdout.split()
    assert first.stdout == second.stdout  # reused, not regenerated per process
    assert secret != "dev-insecure-change-me-gomodel" and len(secret) >= 50
    assert secret not in encryption  # the encryption key is not derived from the secret key
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_the_public_default_secret_is_refused_without_debug(tmp_path):
    refused = run_settings(tmp_path, "", DJANGO_SECRET_KEY="dev-insecure-change-me-gomodel")
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr and "public default" in refused.stderr
    allowed = run_settings(tmp_path, "", DJANGO_SECRET_KEY="dev-insecure-change-me-gomodel", DJANGO_DEBUG="1")
    assert allowed.returncode == 0, allowed.stderr


def test_an_invalid_encryption_key_is_refused(tmp_path):
    refused = run_settings(tmp_path, "", GOMODEL_ENCRYPTION_KEYS="not-a-fernet-key")
    assert refused.returncode != 0 and "GOMODEL_ENCRYPTION_KEYS" in refused.stderr


def test_allowed_hosts_are_local_unless_debug_or_set(tmp_path):
    code = "from django.conf import settings; print(','.join(settings.ALLOWED_HOSTS))"
    assert run_settings(tmp_path, code).stdout.strip() == "localhost,127.0.0.1,[::1]"
    assert run_settings(tmp_path, code, DJANGO_DEBUG="1").stdout.strip() == "*"
    assert run_settings(tmp_path, code, DJANGO_ALLOWED_HOSTS="gw.example.com").stdout.strip() == "gw.example.com"


def production_env(fill_placeholders=True) -> dict:
    """The documented production environment, with its CHANGE-ME placeholders replaced as a deployer
    must (random values of the same form)."""
    env = {}
    for line in (REPO / ".env.production.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    if fill_placeholders:
        for name, value in env.items():
            if name == "GOMODEL_ENCRYPTION_KEYS":
                env[name] = Fernet.generate_key().decode()
            elif "CHANGE-ME" in value:
                env[name] = value.replace("CHANGE-ME", secrets.token_urlsafe(8))
    return env


def test_the_production_placeholders_are_refused(tmp_path):
    env = production_env(fill_placeholders=False)
    refused = run_settings(tmp_path, "", **{k: v for k, v in env.items() if k != "DATABASE_URL"})
    assert refused.returncode != 0 and "placeholder" in refused.stderr


def test_check_deploy_is_clean_with_the_documented_production_env(tmp_path):
    env = production_env()
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"  # check --deploy needs no database server
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=REPO,
        env={"PATH": os.environ["PATH"], "GOMODEL_VAR_DIR": str(tmp_path), **env},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_warns_with_the_defaults(tmp_path):
    """The test above is not clean by accident: without the production settings the same check warns."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=REPO,
        env={"PATH": os.environ["PATH"], "GOMODEL_VAR_DIR": str(tmp_path)}, capture_output=True, text=True,
        timeout=120)
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stdout + result.stderr


@pytest.mark.parametrize("name", [".env.example", ".env.production.example"])
def test_env_files_never_carry_the_public_default(name):
    assert "dev-insecure-change-me-gomodel" not in (REPO / name).read_text()
