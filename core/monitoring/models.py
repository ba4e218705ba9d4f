"""Check results: one row per check run over a window of one deployment."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import enum_column, json_column, timestamp


class CheckKind(StrEnum):
    drift = "drift"
    quality = "quality"
    decay = "decay"
    hardware = "hardware"


class CheckStatus(StrEnum):
    ok = "ok"
    warn = "warn"
    fail = "fail"
    error = "error"
    no_data = "no_data"


class CheckResult(SQLModel, table=True):
    __tablename__ = "check_result"
    __table_args__ = (
        Index("ix_check_result_deployment_kind_end", "deployment_id", "kind", "window_end"),
    )

    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(foreign_key="deployment.id", index=True)
    kind: CheckKind = enum_column(CheckKind)
    window_start: datetime = timestamp(nullable=False)
    window_end: datetime = timestamp(nullable=False)
    status: CheckStatus = enum_column(CheckStatus)
    score: float | None = None
    details: dict[str, Any] = json_column()
    reference_hash: str | None = Field(default=None, max_length=64)
    rows: int = 0
    duration_ms: int = 0
    created_at: datetime = timestamp(default_now=True)


class CheckResultPublic(BaseModel):
    id: int
    deployment_id: int
    kind: CheckKind
    window_start: datetime
    window_end: datetime
    status: CheckStatus
    score: float | None
    details: dict[str, Any]
    reference_hash: str | None
    rows: int
    duration_ms: int
