"""Ids of the buttons on modeldeck's Slack messages.

Shared by the message builders (core/notify/blocks.py, which renders outbox messages) and the
bot (bot/listeners/actions.py, which handles the clicks), so a renamed button cannot silently
stop working. Values are namespaced: Slack sends them back verbatim in block_actions payloads.
"""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    approve = "modeldeck.approve"
    reject = "modeldeck.reject"
    rollback = "modeldeck.rollback"  # alert button, value: alert id
    confirm_rollback = "modeldeck.confirm_rollback"  # slash-command confirmation, value: JSON
    cancel = "modeldeck.cancel"
    snooze_1h = "modeldeck.snooze_1h"  # value: alert id
    open_dashboard = "modeldeck.open_dashboard"  # a link button; Slack still sends the click


class BlockId(StrEnum):
    approval_actions = "modeldeck.approval_actions"
    alert_actions = "modeldeck.alert_actions"
    rollback_actions = "modeldeck.rollback_actions"
