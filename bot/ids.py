"""Ids the bot listens for. Button ids live in core (the outbox renders the same buttons)."""

from __future__ import annotations

from modeldeck.core.notify.actions import ActionId, BlockId

COMMAND = "/modeldeck"

__all__ = ["COMMAND", "ActionId", "BlockId"]
