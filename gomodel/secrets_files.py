"""Secrets a fresh install needs and must not share with anyone: created once under var/ (mode 0600)
when the environment does not provide them, then reused, so `make run` is safe without extra steps.

Replicas must share them: set DJANGO_SECRET_KEY and GOMODEL_ENCRYPTION_KEYS in each replica's
environment (or give them the same var/ files)."""

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

SECRET_KEY_FILE = "secret_key"
ENCRYPTION_KEYS_FILE = "encryption_keys"


def load_or_create(path: Path, make: Callable[[], str]) -> str:
    """The file's content; when it does not exist, `make()` written to it first (0600, created
    exclusively, so two processes starting at once agree on one value)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text().strip()
        if value:
            return value
        # An empty file: a concurrent creator is still writing, or a crash left it. Fill it.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as handle:
        handle.write(make() + "\n")
    os.chmod(path, 0o600)
    return path.read_text().strip()


def private_dir(path: Path) -> Path:
    """`path` created if missing, and made 0700 (only this user may list or enter it)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
    except PermissionError:  # not ours (a shared mount): leave it as the operator made it
        pass
    return path


def private_file(path) -> None:
    """Create `path` empty with mode 0600 if it does not exist (an SQLite database file, before SQLite
    creates it with the umask's 0644); an existing file readable by others is made 0600."""
    if not path or str(path) == ":memory:" or str(path).startswith("file:"):
        return
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        pass


def secret_key(var_dir: Path) -> str:
    return load_or_create(Path(var_dir) / SECRET_KEY_FILE, lambda: secrets.token_urlsafe(50))


def encryption_keys(var_dir: Path) -> list[str]:
    """The Fernet keys of var/encryption_keys, newest first (one a line)."""
    raw = load_or_create(Path(var_dir) / ENCRYPTION_KEYS_FILE, lambda: Fernet.generate_key().decode())
    return parse_keys(raw.replace("\n", ","))


def parse_keys(raw: str) -> list[str]:
    """GOMODEL_ENCRYPTION_KEYS: comma-separated Fernet keys, newest first."""
    return [key.strip() for key in raw.split(",") if key.strip()]
