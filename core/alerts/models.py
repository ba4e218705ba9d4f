"""Alerts, deduplicated by fingerprint like Alertmanager."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import enum_column, json_column, timestamp


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


class AlertStatus(StrEnum):
    firing = "firing"
    resolved = "resolved"
    snoozed = "snoozed"


OPEN = (AlertStatus.firing, AlertStatus.snoozed)
_OPEN_SQL = "status IN ('firing', 'snoozed')"


class Alert(SQLModel, table=True):
    __table_args__ = (
        # At most one open alert per fingerprint, guaranteed by the database: two checks
        # firing the same rule at once update one alert instead of opening two.
        Index(
            "uq_alert_open_fingerprint",
            "fingerprint",
            unique=True,
            postgresql_where=text(_OPEN_SQL),
            sqlite_where=text(_OPEN_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(index=True, max_length=64)
    rule: str = Field(max_length=100)
    severity: Severity = enum_column(Severity, Severity.warning)
    model_id: int | None = Field(default=None, foreign_key="model.id", index=True)
    version_id: int | None = Field(default=None, foreign_key="model_version.id")
    environment_id: int | None = Field(default=None, foreign_key="environment.id")
    key: str = Field(default="", max_length=200)
    status: AlertStatus = enum_column(AlertStatus, AlertStatus.firing, index=True)
    summary: str = Field(default="", max_length=2000)
    details: dict[str, Any] = json_column()
    first_seen: datetime = timestamp(default_now=True)
    last_seen: datetime = timestamp(default_now=True)
    last_notified: datetime | None = timestamp()
    resolved_at: datetime | None = timestamp()
    resolved_by: str | None = Field(default=None, max_length=200)
    snoozed_until: datetime | None = timestamp()
    snoozed_by: str | None = Field(default=None, max_length=200)
    count: int = 1
    pauses_promotions: bool = Field(default=False, description="trust level pause/rollback")
    slack_channel: str | None = Field(default=None, max_length=64)
    slack_ts: str | None = Field(default=None, max_length=64)


class AlertPublic(BaseModel):
    id: int
    fingerprint: str
    rule: str
    severity: Severity
    model: str | None
    version: str | None
    environment: str | None
    key: str = ""
    status: AlertStatus
    summary: str
    details: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    last_notified: datetime | None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    snoozed_until: datetime | None
    snoozed_by: str | None
    count: int
    pauses_promotions: bool = False


class AlertsPublic(BaseModel):
    data: list[AlertPublic]
    count: int


class SnoozeRequest(BaseModel):
    duration: str = Field(max_length=16, description="30m, 2h, 1d or 1w (at most 30d)")
