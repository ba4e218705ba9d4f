"""One GPU scrape at a time: the scheduler's and a manual `modeldeck gpu-scrape` never overlap.

Two scrapes of the same hours would otherwise both delete (nothing yet) and both insert, and
the hours would count twice (the unique index of `gpu_usage_hourly` refuses that too; the lock
makes the second scrape wait or say why instead of failing on a constraint).

PostgreSQL: a session-level advisory lock on a connection of its own (freed by PostgreSQL when
the process dies). SQLite: an exclusive flock on a file beside the database (the scheduler's
`FileLock`). An in-memory database lives in one process: no lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from modeldeck.core.errors import Conflict
from modeldeck.core.scheduler_lock import FileLock, Leadership, NoLock, advisory_key

POLL_SECONDS = 0.2


class PgScrapeLock:
    """pg_try_advisory_lock on a dedicated connection; unlocked and returned on release."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self.key: int | None = None
        self.held = False

    def try_acquire(self) -> bool:
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self.key = advisory_key(self._conn, lock="gpu-scrape")
        self.held = bool(
            self._conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar()
        )
        return self.held

    def alive(self) -> bool:
        return self.held

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            if self.held:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except Exception:  # the connection broke: closing it for good frees the lock
            self._conn.invalidate()
        finally:
            self._conn.close()
            self._conn = None
            self.held = False

    def describe(self) -> str:
        return f"PostgreSQL advisory lock {self.key}"


def lock_for(engine: Engine) -> Leadership:
    if engine.dialect.name == "postgresql":
        return PgScrapeLock(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileLock(Path(f"{database}.gpu-scrape.lock"))
    return NoLock()


@contextmanager
def scrape_lock(engine: Engine, *, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the scrape lock; Conflict when another scrape keeps it longer than wait_seconds."""
    lock = lock_for(engine)
    deadline = time.monotonic() + wait_seconds
    try:
        while not lock.try_acquire():
            if time.monotonic() >= deadline:
                raise Conflict(
                    "another GPU scrape is running (the scheduler's or a `modeldeck gpu-scrape`)",
                    hint="it stores the same hours; run this one again when it has finished",
                )
            time.sleep(POLL_SECONDS)
        yield
    finally:
        lock.release()
