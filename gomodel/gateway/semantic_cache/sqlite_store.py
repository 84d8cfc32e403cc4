"""The semantic cache's embedded store: sqlite-vec in a SQLite file of its own (SEMANTIC_CACHE_PATH, beside the
database under GOMODEL_VAR_DIR). Python's sqlite3 here cannot load extensions, so the file is opened with apsw.

A search is exact (sqlite-vec's cosine distance over the rows of one tenant and scope, found by index): a scope
holds the paraphrases of one kind of request, not the whole cache."""

import threading
from collections.abc import Sequence
from pathlib import Path

from gomodel import secrets_files

from .store import SemanticCacheUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS semantic_entries (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    scope TEXT NOT NULL,
    expires_at REAL NOT NULL,
    embedding BLOB NOT NULL,
    entry BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS semantic_entries_scope ON semantic_entries (tenant_id, scope, expires_at);
"""


class SqliteVecStore:
    def __init__(self, path: Path | str):
        try:
            import apsw
            import sqlite_vec
        except ImportError as exc:
            raise SemanticCacheUnavailable(f"the sqlite-vec store needs apsw and sqlite-vec ({exc})") from None
        self._serialize = sqlite_vec.serialize_float32
        self._lock = threading.Lock()  # one connection, used by the default executor's threads in turn
        # Tenants' answers: 0600 like the database (SQLite gives its -wal and -shm files the file's mode).
        secrets_files.private_file(path)
        try:
            self.db = apsw.Connection(str(path))
            self.db.enable_load_extension(True)
            self.db.load_extension(sqlite_vec.loadable_path())
            self.db.enable_load_extension(False)
            self.db.set_busy_timeout(2000)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(SCHEMA)
        except apsw.Error as exc:
            raise SemanticCacheUnavailable(f"the sqlite-vec store at {path} cannot be opened ({exc})") from None

    def add(self, tenant_id: int, scope: str, vector: Sequence[float], entry: bytes, expires_at: float) -> None:
        with self._lock:
            self.db.execute("INSERT INTO semantic_entries (tenant_id, scope, expires_at, embedding, entry) "
                            "VALUES (?, ?, ?, ?, ?)", (tenant_id, scope, expires_at, self._serialize(list(vector)),
                                                       entry))

    def nearest(self, tenant_id: int, scope: str, vector: Sequence[float], min_similarity: float,
                now: float) -> tuple[float, bytes] | None:
        with self._lock:
            row = next(self.db.execute(
                "SELECT 1.0 - vec_distance_cosine(embedding, ?) AS similarity, entry FROM semantic_entries "
                "WHERE tenant_id = ? AND scope = ? AND expires_at > ? ORDER BY similarity DESC LIMIT 1",
                (self._serialize(list(vector)), tenant_id, scope, now)), None)
        if row is None or row[0] is None or row[0] < min_similarity:
            return None
        return float(row[0]), bytes(row[1])

    def purge(self, now: float) -> int:
        with self._lock:
            self.db.execute("DELETE FROM semantic_entries WHERE expires_at <= ?", (now,))
            return self.db.changes()

    def close(self) -> None:
        with self._lock:
            self.db.close()
