"""Databases for tests: a migrated SQLite template copied per test, and PostgreSQL schemas."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from modeldeck.core import db

PG_URL = os.environ.get(
    "MODELDECK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def sqlite_template(directory: Path) -> Path:
    """Migrate once into a file; each test copies it (much faster than migrating again)."""
    path = directory / "template.db"
    if not path.exists():
        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)
        with engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        engine.dispose()
    return path


def sqlite_engine(template: Path, target: Path) -> Engine:
    shutil.copy(template, target)
    return db.make_engine(f"sqlite:///{target}")


def postgres_reachable() -> str | None:
    """None if PostgreSQL answers, else why not."""
    try:
        engine = db.make_engine(PG_URL, pool_size=1, max_overflow=0)
        db.ping(engine)
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return str(exc)


def require_postgres() -> None:
    """Skip when PostgreSQL is down locally; in CI (CI=true) that is a failure."""
    why = postgres_reachable()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL at {PG_URL} is required in CI: {why}")
    pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {why}")


def postgres_schema_url() -> tuple[str, str]:
    """A fresh schema for one test session/worker; returns (url, schema)."""
    schema = f"mdk_{uuid.uuid4().hex[:10]}"
    admin = db.make_engine(PG_URL, pool_size=1, max_overflow=0)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    admin = db.make_engine(PG_URL, pool_size=1, max_overflow=0)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def truncate_all(engine: Engine) -> None:
    from modeldeck.core.tables import metadata

    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
