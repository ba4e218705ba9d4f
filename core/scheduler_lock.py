"""Leader election for the scheduler: one acts, the others wait and take over.

PostgreSQL: a session-level advisory lock held on a dedicated connection. When the leader's
process dies its connection closes and PostgreSQL frees the lock, so a waiting scheduler gets
it on its next try. The key is derived from the database and schema names, so two modeldeck
installations sharing a server (or parallel test schemas) do not block each other.

SQLite: an exclusive flock on a file beside the database (one machine, which is what SQLite
supports anyway). In-memory databases need no lock.

Fencing: a leader that lost its lock may still have jobs running. `fenced_session` gives a job
a Session whose every commit first asks `Leadership.fence` whether this process still leads,
inside the transaction being committed, and refuses with LostLeadership otherwise. On
PostgreSQL the question is answered by the database (is the advisory lock still held by our
lock connection's backend?) under a shared transaction lock that a new leader takes
exclusively once before it starts: every commit of the old leader either finished before the
new leader's first job or sees that the lock is gone.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from modeldeck.core import logs

log = logs.get("modeldeck.scheduler")


class LostLeadership(RuntimeError):
    """A job's commit was refused: this scheduler no longer leads, another one may."""


class Leadership(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if free; True while this process holds it."""
        ...

    def alive(self) -> bool:
        """Still holding it (False once the lock connection broke)."""
        ...

    def fence(self, conn: Connection) -> bool:
        """Inside the transaction on `conn` that is about to commit: does this process still
        lead? Safe to call from job threads (it never touches the lock's own connection)."""
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
        self.fence_key: int | None = None
        self.pid: int | None = None  # backend of the lock connection while held
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return self.alive()
        try:
            if self._conn is None:
                self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self.key = advisory_key(self._conn)
                self.fence_key = advisory_key(self._conn, "fence")
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar()
            if got:
                self.pid = self._conn.execute(text("SELECT pg_backend_pid()")).scalar()
                # Wait for commits of the previous leader that passed its fence: they hold the
                # fence key shared until they end; later ones will see its lock gone.
                self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.fence_key})
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.fence_key})
        except Exception as exc:  # database unreachable: not leader, try again later
            log.warning("scheduler.lock_unavailable", error=f"{type(exc).__name__}: {exc}")
            self._close()
            return False
        self.held = bool(got)
        return self.held

    def fence(self, conn: Connection) -> bool:
        if not self.held or self.pid is None:
            return False
        conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": self.fence_key})
        # Our lock connection's backend still holds the lock. (Were it gone, its lock went with
        # it; a successor's lock connection reusing that very pid is the one blind spot.)
        held = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = :pid AND objsubid = 1"
                " AND classid::text::bigint = ((CAST(:key AS bigint) >> 32) & 4294967295)"
                " AND objid::text::bigint = (CAST(:key AS bigint) & 4294967295)"
            ),
            {"pid": self.pid, "key": self.key},
        ).scalar()
        return bool(held)

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
        self.pid = None
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def describe(self) -> str:
        return f"PostgreSQL advisory lock {self.key}"


def advisory_key(conn: Connection, purpose: str = "", *, lock: str = "scheduler") -> int:
    """The advisory-lock key of `lock` ("scheduler", "gpu-scrape") in this database and
    schema, so that two modeldeck installations sharing a server never share a lock."""
    where = conn.execute(text("SELECT current_database() || '/' || current_schema()")).scalar()
    name = f"modeldeck-{lock}/{where}" + (f"/{purpose}" if purpose else "")
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
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

    def fence(self, conn: Connection) -> bool:
        return self._file is not None  # an flock is lost only by releasing it

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

    def fence(self, conn: Connection) -> bool:
        return True

    def release(self) -> None:
        pass

    def describe(self) -> str:
        return "no lock (in-memory database)"


def fenced_session(engine: Engine, lock: Leadership, still_leading: Callable[[], bool]) -> Session:
    """A Session whose commits raise LostLeadership unless `still_leading()` (this process's
    own view: its leadership term has not ended) and `lock.fence(...)` (the lock's view) both
    say this process leads. The refused transaction is left for the caller to roll back."""
    session = Session(engine, expire_on_commit=False)

    def check(_: Session) -> None:
        if not still_leading() or not lock.fence(session.connection()):
            raise LostLeadership(f"not committing: this scheduler lost {lock.describe()}")

    event.listen(session, "before_commit", check)
    return session
