"""The vector store behind the semantic cache: one small interface, two backends (sqlite_store.py: sqlite-vec
in a file under GOMODEL_VAR_DIR; pg_store.py: pgvector in the PostgreSQL database).

Its methods block (a database call): the gateway runs them in a thread, never on the event loop. Every row
belongs to one tenant and one scope (text.py's hash of endpoint, target, model and non-text parameters); a search
names both, so it never sees another tenant's rows or another model's."""

from collections.abc import Sequence
from typing import Protocol

from django.conf import settings


class SemanticCacheUnavailable(RuntimeError):
    """The configured store cannot be used (pgvector missing, sqlite-vec not loadable): said at start-up."""


class VectorStore(Protocol):
    def add(self, tenant_id: int, scope: str, vector: Sequence[float], entry: bytes, expires_at: float) -> None:
        """Keep `entry` (a response_cache.Entry's bytes) for `vector` until `expires_at` (Unix time)."""

    def nearest(self, tenant_id: int, scope: str, vector: Sequence[float], min_similarity: float,
                now: float) -> tuple[float, bytes] | None:
        """The live entry of this tenant and scope most similar (cosine) to `vector`, if at least
        `min_similarity`: (similarity, entry)."""

    def purge(self, now: float) -> int:
        """Remove expired entries; how many."""

    def close(self) -> None: ...


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
