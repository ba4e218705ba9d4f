"""Leader election for the scheduler: one acts, the others wait and take over.

PostgreSQL: a session-level advisory lock held on a dedicated connection. When the leader's
process dies its connection closes and PostgreSQL frees the lock, so a waiting scheduler gets
it on its next try. The key is derived from the database and schema names, so two modeldeck
installations sharing a server (or parallel test schemas) do not block each other.

SQLite: an exclusive flock on a file beside the database (one machine, which is what SQLite
supports anyway). In-memory databases need no lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from modeldeck.core import logs

log = logs.get("modeldeck.scheduler")


class Leadership(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if free; True while this process holds it."""
        ...

    def alive(self) -> bool:
        """Still holding it (False once the lock connection broke)."""
        ...

    def release(self) -> None: ...

    def describe(self) -> str: ...


def leadership_for(engine: Engine) -> Leadership:
    """The lock that fits the database behind `engine`."""
    if engine.dialect.name == "postgresql":
        return PgAdvisoryLock(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileLock(Path(f"{database}.scheduler.lock"))
    return NoLock()


class PgAdvisoryLock:
    """pg_try_advisory_lock on a connection of its own (never returned to a pool)."""

    def __init__(self, engine: Engine) -> None:
        # NullPool: the connection is really closed on release, which frees the lock.
        self._engine = create_engine(engine.url, poolclass=NullPool)
        self._conn: Connection | None = None
        self.key: int | None = None
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return self.alive()
        try:
            if self._conn is None:
                self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self.key = _lock_key(self._conn)
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar()
        except Exception as exc:  # database unreachable: not leader, try again later
            log.warning("scheduler.lock_unavailable", error=f"{type(exc).__name__}: {exc}")
            self._close()
            return False
        self.held = bool(got)
        return self.held

    def alive(self) -> bool:
        if self._conn is None or not self.held:
            return False
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND objsubid = 1"
                    " AND classid::text::bigint = ((CAST(:key AS bigint) >> 32) & 4294967295)"
                    " AND objid::text::bigint = (CAST(:key AS bigint) & 4294967295)"
                ),
                {"key": self.key},
            ).scalar()
        except Exception:
            self._close()
            return False
        return bool(held)

    def release(self) -> None:
        if self._conn is not None and self.held:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except Exception:  # the connection is gone; so is the lock
                pass
        self._close()

    def _close(self) -> None:
        self.held = False
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def describe(self) -> str:
        return f"PostgreSQL advisory lock {self.key}"


def _lock_key(conn: Connection) -> int:
    where = conn.execute(text("SELECT current_database() || '/' || current_schema()")).scalar()
    digest = hashlib.blake2b(f"modeldeck-scheduler/{where}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class FileLock:
    """An exclusive, non-blocking flock; the OS drops it when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 - held open while leading
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()).encode())
        handle.flush()
        self._file = handle
        return True

    def alive(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def describe(self) -> str:
        return f"file lock {self.path}"


class NoLock:
    """In-memory databases live in one process: nothing to elect."""

    def try_acquire(self) -> bool:
        return True

    def alive(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def describe(self) -> str:
        return "no lock (in-memory database)"
