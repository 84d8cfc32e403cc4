"""The vector store behind the semantic cache: one small interface, two backends (sqlite_store.py: sqlite-vec
in a file under GOMODEL_VAR_DIR; pg_store.py: pgvector in the PostgreSQL database).

Its methods block (a database call): the gateway runs them in a thread, never on the event loop. Every row
belongs to one tenant and one scope (text.py's hash of endpoint, target, model and non-text parameters); a search
names both, so it never sees another tenant's rows or another model's."""

from collections.abc import Sequence
from typing import Protocol


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
