"""The outbox: notifications survive a restart and a Slack outage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from modeldeck.core.fields import json_column, timestamp


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=64, description="delivery channel: slack, webhook")
    kind: str = Field(default="alert", max_length=64)
    payload: dict[str, Any] = json_column()
    attempts: int = 0
    next_attempt_at: datetime = timestamp(default_now=True, index=True)
    created_at: datetime = timestamp(default_now=True)
    sent_at: datetime | None = timestamp(index=True)
    error: str | None = Field(default=None, max_length=2000)
