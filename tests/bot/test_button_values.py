"""Button values carry ids only: free text (a rollback reason) waits in the bot, so a long
non-ASCII reason can neither overflow Slack's 2000-character value nor damage the button."""

from __future__ import annotations

import json

import pytest
from sqlmodel import col, select

from modeldeck.bot import pending
from modeldeck.core.errors import InvalidInput
from modeldeck.core.notify import kit
from modeldeck.core.notify.actions import ActionId
from modeldeck.core.rollouts.models import Deployment, DeploymentKind
from tests.bot.conftest import DEPLOYER, OPS, Bot
from tests.bot.slack import button
from tests.utils.servers import wait_until

# 1000 characters (the parser's limit), Cyrillic with quotes and backslashes: 6 characters
# each once JSON escapes them (`\u0436`), so the old JSON value passed 2000 at ~330.
REASON = ('задержка p99 "выросла" вдвое \\ откат ' * 40)[:1000].strip()


def rollbacks(bot: Bot) -> list[Deployment]:
    with bot.session() as session:
        return list(
            session.exec(
                select(Deployment)
                .where(Deployment.kind == DeploymentKind.rollback)
                .order_by(col(Deployment.id))
            ).all()
        )


def test_a_1000_character_non_ascii_reason_survives_the_confirmation(bot: Bot) -> None:
    assert len(REASON) >= 999 and not REASON.isascii()
    sent = bot.slack.command(f"rollback fraud-detector in prod because {REASON}", user=DEPLOYER)
    ask = sent.reply()
    value = button(ask.args, ActionId.confirm_rollback)["value"]
    assert len(value) < 300  # ids only
    assert "задержка" not in value and "\\u" not in value
    assert "r" not in json.loads(value)

    click = bot.slack.click(
        ActionId.confirm_rollback,
        value,
        user=DEPLOYER,
        channel=OPS,
        message_ts="1700000000.000001",
        ephemeral=True,
    )
    assert click.status == 200
    wait_until(lambda: rollbacks(bot), what="the rollback")
    [rollback] = rollbacks(bot)
    assert rollback.reason == REASON
    assert "damaged" not in click.text(1)


def test_an_expired_confirmation_changes_nothing(bot: Bot) -> None:
    sent = bot.slack.command("rollback fraud-detector in prod because late", user=DEPLOYER)
    value = json.loads(button(sent.reply().args, ActionId.confirm_rollback)["value"])
    value[pending.TOKEN_KEY] = "forgotten-by-a-restart"
    before = bot.snapshot()
    click = bot.slack.click(
        ActionId.confirm_rollback,
        json.dumps(value),
        user=DEPLOYER,
        channel=OPS,
        message_ts="1700000000.000002",
        ephemeral=True,
    )
    assert "this confirmation has expired" in click.text()
    assert "run the rollback command again" in click.text()
    assert click.reply().args["response_type"] == "ephemeral"
    assert bot.snapshot() == before


def test_pending_texts_expire_and_stay_bounded() -> None:
    now = [0.0]
    store = pending.PendingTexts(ttl=60, capacity=3, monotonic=lambda: now[0])
    value = pending.without_text({"m": "fraud-detector", "r": "why"}, store)
    assert pending.with_text(value, store) == {"m": "fraud-detector", "r": "why"}
    assert pending.without_text({"m": "x", "r": ""}, store) == {"m": "x"}  # no text, no token
    now[0] = 61
    with pytest.raises(InvalidInput, match="expired"):
        pending.with_text(value, store)
    tokens = [store.put(str(i)) for i in range(5)]
    assert [store.get(t) for t in tokens] == [None, None, "2", "3", "4"]


def test_a_value_that_would_be_clipped_is_refused_not_drawn() -> None:
    assert kit.button("ok", ActionId.approve, "7").value == "7"
    with pytest.raises(ValueError, match="2001 characters"):
        kit.button("too long", ActionId.approve, "x" * 2001)
