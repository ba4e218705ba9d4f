"""Slack Block Kit for outbox messages (alerts, approval requests, rollout updates).

Rendered at delivery time from the current database state, so a message delivered late after
a Slack outage shows the truth, not what was true when it was queued.
Owned by the Slack work (bot/ reuses these builders for in-place updates).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from modeldeck.core.config import Settings
from modeldeck.core.notify.models import OutboxMessage


def render(session: Session, settings: Settings, message: OutboxMessage) -> dict[str, Any]:
    """Return {"text": fallback, "blocks": [...]} for a queued message.

    Minimal first version: a plain section; the Slack work replaces it with rich Block Kit.
    """
    text = str(message.payload.get("text") or f"modeldeck {message.kind}")
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
