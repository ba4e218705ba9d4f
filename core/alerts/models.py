"""Alerts, deduplicated by fingerprint like Alertmanager."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
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


class Alert(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(index=True, max_length=64)
    rule: str = Field(max_length=100)
    severity: Severity = enum_column(Severity, Severity.warning)
    model_id: int | None = Field(default=None, foreign_key="model.id", index=True)
    version_id: int | None = Field(default=None, foreign_key="model_version.id")
    environment_id: int | None = Field(default=None, foreign_key="environment.id")
    status: AlertStatus = enum_column(AlertStatus, AlertStatus.firing, index=True)
    summary: str = Field(default="", max_length=2000)
    details: dict[str, Any] = json_column()
    first_seen: datetime = timestamp(default_now=True)
    last_seen: datetime = timestamp(default_now=True)
    last_notified: datetime | None = timestamp()
    resolved_at: datetime | None = timestamp()
    snoozed_until: datetime | None = timestamp()
    snoozed_by: str | None = Field(default=None, max_length=200)
    count: int = 1
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
    status: AlertStatus
    summary: str
    details: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    last_notified: datetime | None
    snoozed_until: datetime | None
    snoozed_by: str | None
    count: int
