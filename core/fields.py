"""Column shapes shared by every domain's tables (timestamps, JSON, enums)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field

from modeldeck.core.clock import as_utc, utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """TIMESTAMP WITH TIME ZONE that always binds and returns aware UTC datetimes.

    SQLite has no time zones: it stores the wall-clock digits it is given and compares them as
    text, so a bound `14:00+02:00` would be compared as 14:00 against values stored in UTC, and
    it hands back naive datetimes. Converting on the way in and out makes both databases agree.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value) if isinstance(value, datetime) else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value) if isinstance(value, datetime) else value


def timestamp(*, default_now: bool = False, index: bool = False, nullable: bool = True) -> Any:
    """A timestamp column: aware UTC datetimes in and out, on SQLite and PostgreSQL."""
    if default_now:
        return Field(default_factory=utcnow, sa_type=UTCDateTime(), index=index, nullable=False)
    return Field(default=None, sa_type=UTCDateTime(), index=index, nullable=nullable)


def json_column(default_factory: Any = dict) -> Any:
    """A JSON column (JSON on SQLite, JSON on PostgreSQL) with a fresh default per row."""
    return Field(default_factory=default_factory, sa_type=JSON)


def public_time(value: datetime | None) -> datetime | None:
    """A stored timestamp as aware UTC (None stays None)."""
    return as_utc(value) if value is not None else None


def enum_column(enum: type[StrEnum], default: Any = ..., *, index: bool = False) -> Any:
    """A StrEnum stored as VARCHAR (no native PG enum: adding a value needs no ALTER TYPE)."""
    sa_type = SAEnum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )
    if default is ...:
        return Field(sa_type=sa_type, index=index)
    return Field(default=default, sa_type=sa_type, index=index)
