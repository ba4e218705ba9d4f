"""Database snapshots for "a bad input leaves the database unchanged" assertions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, inspect, select, table, text
from sqlalchemy.engine import Engine


def _tables(engine: Engine) -> list[str]:
    return sorted(n for n in inspect(engine).get_table_names() if n != "alembic_version")


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (tests keep them small): equal snapshots = nothing changed."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name in _tables(engine):
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def count(engine: Engine, name: str) -> int:
    """Rows in one table."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())


def counts(engine: Engine) -> dict[str, int]:
    """Rows per table."""
    return {name: count(engine, name) for name in _tables(engine)}
