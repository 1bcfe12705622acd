"""The shared search-result cache (SQLite on disk) and single-flight for searches in progress.

`ResultCache` keeps each engine's answer to (query, safe search, region) for a TTL, for every session and
across restarts. SQLite from the standard library rather than a cache package: each write is one
transaction (atomic, safe across processes with WAL), values are JSON (never unpickled), size is bounded
by entries and bytes with oldest-first eviction, and a cache that cannot be read or written degrades to a
miss with a log line, never to a failed search.

`SingleFlight` makes identical searches that arrive while one is in progress wait for that one's answer
instead of calling the engines again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

from outlyne.search.types import SearchResult

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    stored REAL NOT NULL,
    expires REAL NOT NULL,
    value TEXT NOT NULL
)
"""
_RESULT_FIELDS = {f.name for f in fields(SearchResult)}


def _result(row: dict[str, Any]) -> SearchResult:
    # Unknown keys are ignored, so an entry written by a newer version still reads.
    return SearchResult(**{k: v for k, v in row.items() if k in _RESULT_FIELDS})


class ResultCache:
    """`get(key) -> (asked, results) | None`, `put(key, asked, results)`; `asked` is the number of results
    the engine was asked for, so a later request for more knows whether the entry is enough."""

    def __init__(
        self,
        path: Path,
        *,
        ttl: float = 3600.0,
        max_entries: int = 5000,
        max_bytes: int = 64_000_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer in another process
                db.execute(_SCHEMA)
            except sqlite3.DatabaseError:
                db.close()
                log.warning("search cache %s is unreadable; starting a new one", self.path)
                self.path.replace(self.path.with_suffix(".corrupt"))
                db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
            self._db = db
        return self._db

    def get(self, key: str) -> tuple[int, list[SearchResult]] | None:
        if self.ttl <= 0:
            return None
        try:
            with self._lock:
                row = (
                    self._connection()
                    .execute("SELECT expires, value FROM results WHERE key = ?", (key,))
                    .fetchone()
                )
            if row is None or row[0] <= self._clock():
                return None
            entry = json.loads(row[1])
            return int(entry["asked"]), [_result(row) for row in entry["results"]]
        except (sqlite3.Error, OSError, ValueError, KeyError, TypeError) as error:
            log.warning("search cache read failed (%s); treating as a miss", error)
            return None

    def put(self, key: str, asked: int, results: list[SearchResult]) -> None:
        if self.ttl <= 0:
            return
        now = self._clock()
        value = json.dumps({"asked": asked, "results": [asdict(r) for r in results]}, separators=(",", ":"))
        if len(value) > self.max_bytes // 100:  # one entry may not crowd out a hundred others
            return
        try:
            with self._lock:
                db = self._connection()
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute(
                        "INSERT OR REPLACE INTO results (key, stored, expires, value) VALUES (?, ?, ?, ?)",
                        (key, now, now + self.ttl, value),
                    )
                    self._evict(db, now)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except (sqlite3.Error, OSError) as error:
            log.warning("search cache write failed (%s); the answer is not cached", error)

    def _evict(self, db: sqlite3.Connection, now: float) -> None:
        """Expired entries first, then the oldest until both bounds hold."""
        db.execute("DELETE FROM results WHERE expires <= ?", (now,))
        count, size = db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM results").fetchone()
        while count > self.max_entries or size > self.max_bytes:
            excess = max(count - self.max_entries, 1)
            db.execute(
                "DELETE FROM results WHERE key IN (SELECT key FROM results ORDER BY stored LIMIT ?)",
                (excess,),
            )
            count, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM results"
            ).fetchone()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.waiters = 0
        self.value: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """`run(key, work)`: the first caller for a key runs `work`; callers with the same key that arrive
    before it finishes wait and share its value (or its exception)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}

    def run(self, key: Hashable, work: Callable[[], T]) -> T:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            else:
                flight.waiters += 1
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            flight.value = work()
            return flight.value
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def waiters(self, key: Hashable) -> int:
        """How many callers wait on the search in progress for `key` (0 when none is in progress)."""
        with self._lock:
            flight = self._flights.get(key)
            return flight.waiters if flight else 0
