"""The semantic cache's store on PostgreSQL: pgvector in the gateway's database (the `vector` extension, created
by the accounting migration where the server has it). Its own connection (psycopg, autocommit), not Django's:
it is used from the gateway's threads, outside any request's ORM work.

A search is exact (`<=>`, cosine distance, over the rows of one tenant and scope, found by index)."""

import threading
from collections.abc import Sequence

from .store import SemanticCacheUnavailable

TABLE = "gomodel_semantic_cache"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL,
    scope text NOT NULL,
    expires_at double precision NOT NULL,
    embedding vector NOT NULL,
    entry bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_scope ON {TABLE} (tenant_id, scope, expires_at);
"""


def _literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


class PgVectorStore:
    def __init__(self, conninfo: str):
        import psycopg

        self.conninfo = conninfo
        self._lock = threading.Lock()
        try:
            self.db = self._connect()
            installed = self.db.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
            if installed is not None:
                self.db.execute(SCHEMA)
        except psycopg.Error as exc:
            raise SemanticCacheUnavailable(f"the pgvector store cannot use PostgreSQL ({exc})") from None
        if installed is None:
            self.db.close()
            raise SemanticCacheUnavailable(
                "semantic caching is on (SEMANTIC_CACHE_EMBED_MODEL) and the database is PostgreSQL, but its "
                "`vector` extension (pgvector) is not installed: install pgvector on the server and run "
                "`CREATE EXTENSION vector;` (or `manage.py migrate` as a role that may), or set "
                "SEMANTIC_CACHE_STORE=sqlite-vec.")

    def _connect(self):
        import psycopg

        return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)

    def _execute(self, query: str, params: tuple):
        """One statement (the lock held); a connection lost meanwhile (a restart, a failover) is made again once."""
        import psycopg

        try:
            return self.db.execute(query, params)
        except psycopg.OperationalError:
            if not self.db.closed and not self.db.broken:
                raise
            self.db = self._connect()
            return self.db.execute(query, params)

    @classmethod
    def from_django(cls) -> "PgVectorStore":
        from django.conf import settings

        db = settings.DATABASES["default"]
        params = {"dbname": db.get("NAME"), "user": db.get("USER"), "password": db.get("PASSWORD"),
                  "host": db.get("HOST"), "port": db.get("PORT")}
        from psycopg.conninfo import make_conninfo

        return cls(make_conninfo("", **{k: v for k, v in params.items() if v}))

    def add(self, tenant_id: int, scope: str, vector: Sequence[float], entry: bytes, expires_at: float) -> None:
        with self._lock:
            self._execute(f"INSERT INTO {TABLE} (tenant_id, scope, expires_at, embedding, entry) "
                            "VALUES (%s, %s, %s, %s::vector, %s)",
                            (tenant_id, scope, expires_at, _literal(vector), entry))

    def nearest(self, tenant_id: int, scope: str, vector: Sequence[float], min_similarity: float,
                now: float) -> tuple[float, bytes] | None:
        literal = _literal(vector)
        with self._lock:
            row = self._execute(
                f"SELECT 1 - (embedding <=> %s::vector), entry FROM {TABLE} "
                "WHERE tenant_id = %s AND scope = %s AND expires_at > %s "
                "ORDER BY embedding <=> %s::vector LIMIT 1", (literal, tenant_id, scope, now, literal)).fetchone()
        if row is None or row[0] is None or row[0] < min_similarity:
            return None
        return float(row[0]), bytes(row[1])

    def purge(self, now: float) -> int:
        with self._lock:
            return self._execute(f"DELETE FROM {TABLE} WHERE expires_at <= %s", (now,)).rowcount

    def close(self) -> None:
        with self._lock:
            self.db.close()
