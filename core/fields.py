"""Column shapes shared by every domain's tables (timestamps, JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from enum import StrEnum

from sqlalchemy import JSON, DateTime
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field

from modeldeck.core.clock import utcnow


def timestamp(*, default_now: bool = False, index: bool = False, nullable: bool = True) -> Any:
    """A timezone-aware timestamp column (SQLite stores it naive; read it with as_utc)."""
    if default_now:
        return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), index=index,
                     nullable=False)
    return Field(default=None, sa_type=DateTime(timezone=True), index=index, nullable=nullable)


def json_column(default_factory: Any = dict) -> Any:
    """A JSON column (JSON on SQLite, JSON on PostgreSQL) with a fresh default per row."""
    return Field(default_factory=default_factory, sa_type=JSON)


def public_time(value: datetime | None) -> datetime | None:
    from modeldeck.core.clock import as_utc

    return as_utc(value) if value is not None else None


def enum_column(enum: type[StrEnum], default: Any = ..., *, index: bool = False) -> Any:
    """A StrEnum stored as VARCHAR (no native PG enum: adding a value needs no ALTER TYPE)."""
    sa_type = SAEnum(enum, native_enum=False, create_constraint=False, length=32,
                     values_callable=lambda e: [m.value for m in e])
    if default is ...:
        return Field(sa_type=sa_type, index=index)
    return Field(default=default, sa_type=sa_type, index=index)
