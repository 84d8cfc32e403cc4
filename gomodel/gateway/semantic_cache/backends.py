"""Which vector store the semantic cache uses, and opening it (store.py holds the interface the backends share)."""

from django.conf import settings

from .store import SemanticCacheUnavailable, VectorStore


def backend_name() -> str:
    """SEMANTIC_CACHE_STORE, or pgvector when the database is PostgreSQL and sqlite-vec otherwise."""
    name = settings.SEMANTIC_CACHE_STORE
    if name:
        if name not in ("sqlite-vec", "pgvector"):
            raise SemanticCacheUnavailable(f"SEMANTIC_CACHE_STORE={name!r}: use 'sqlite-vec' or 'pgvector'.")
        return name
    engine = settings.DATABASES["default"]["ENGINE"]
    return "pgvector" if "postgresql" in engine else "sqlite-vec"


def open_store() -> VectorStore:
    """The configured store, opened (blocking: call it in a thread). SemanticCacheUnavailable says why not."""
    if backend_name() == "pgvector":
        from .pg_store import PgVectorStore

        return PgVectorStore.from_django()
    from .sqlite_store import SqliteVecStore

    return SqliteVecStore(settings.SEMANTIC_CACHE_PATH)
