"""AuditEvent: append-only; the code has no update or delete path for it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import json_column, timestamp


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_target_at", "target", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = timestamp(default_now=True, index=True)
    actor: str = Field(max_length=200, index=True)
    via: str = Field(max_length=32)
    action: str = Field(max_length=100, index=True)
    target: str = Field(max_length=300)
    before: dict[str, Any] | None = json_column(default_factory=lambda: None)
    after: dict[str, Any] | None = json_column(default_factory=lambda: None)
    request_id: str | None = Field(default=None, max_length=64)


class AuditEventPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    via: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class AuditEventsPublic(BaseModel):
    data: list[AuditEventPublic]
    count: int
