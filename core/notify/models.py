"""The outbox: notifications survive a restart and a Slack outage."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import enum_column, json_column, timestamp


class OutboxStatus(StrEnum):
    pending = "pending"  # waiting for its next attempt
    sent = "sent"
    skipped = "skipped"  # the channel is not configured: nothing to deliver to
    dead = "dead"  # gave up (permanent error, give_up_after_hours, max_attempts); kept


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_message_status_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=64, description="delivery channel: slack, webhook:<name>")
    kind: str = Field(default="alert", max_length=64)
    payload: dict[str, Any] = json_column()
    status: OutboxStatus = enum_column(OutboxStatus, OutboxStatus.pending)
    attempts: int = 0
    next_attempt_at: datetime = timestamp(default_now=True, index=True)
    created_at: datetime = timestamp(default_now=True)
    requeued_at: datetime | None = timestamp()  # the give-up period starts again from here
    last_attempt_at: datetime | None = timestamp()
    sent_at: datetime | None = timestamp(index=True)
    error: str | None = Field(default=None, max_length=2000)


class DrainReport(BaseModel):
    """What one pass over the outbox did."""

    sent: int = 0
    retried: int = 0
    deferred: int = 0
    skipped: int = 0
    dead: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.skipped + self.dead


class OutboxMessagePublic(BaseModel):
    """A message as `modeldeck outbox` lists it (the payload stays internal)."""

    id: int
    channel: str
    kind: str
    status: OutboxStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    error: str | None
    about: str | None  # "alert 12", "deployment 7"
