"""Time buckets computed in SQL, the same on SQLite and PostgreSQL.

Pages over long ranges read one row per bucket instead of one per check: a year of hourly checks
becomes 365 daily points, aggregated by the database through the (deployment, kind, window_end)
index rather than in Python.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, cast, func
from sqlalchemy.sql.elements import ColumnElement

# Bucket widths a chart may use, smallest first (seconds).
BUCKETS = (900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
MAX_POINTS = 400


def bucket_seconds(
    start: datetime, end: datetime, *, max_points: int = MAX_POINTS, minimum: int = 3600
) -> int:
    """The smallest bucket width (at least `minimum`) that keeps a range under `max_points`."""
    span = max((end - start).total_seconds(), 1.0)
    for width in BUCKETS:
        if width >= minimum and span / width <= max_points:
            return width
    return BUCKETS[-1]


def epoch_bucket(column: Any, seconds: int, dialect: str) -> ColumnElement[Any]:
    """Start of the bucket holding `column`, as Unix seconds (an integer on both dialects)."""
    if dialect == "sqlite":
        # SQLite keeps timestamps as naive UTC text; strftime('%s') reads it as UTC.
        epoch: ColumnElement[Any] = cast(func.strftime("%s", column), Integer)
        return (epoch // seconds) * seconds  # `/` is true division in SQLAlchemy 2
    epoch = func.extract("epoch", column)
    return cast(func.floor(epoch / seconds) * seconds, BigInteger)


def from_epoch(value: int | float) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def floor_time(value: datetime, seconds: int) -> datetime:
    """`value` rounded down to a multiple of `seconds` since the epoch (UTC)."""
    stamp = int(value.timestamp())
    return from_epoch(stamp - stamp % seconds)


def to_utc(value: datetime) -> datetime:
    """Aware UTC for binding: SQLite drops the offset, so every bound value must be UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def span_text(seconds: int) -> str:
    """'1 h', '6 h', '1 d' — how a chart names its bucket width."""
    delta = timedelta(seconds=seconds)
    if delta >= timedelta(days=1):
        return f"{delta.days} d"
    if delta >= timedelta(hours=1):
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"
