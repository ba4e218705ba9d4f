"""What people type is shown as typed: `<!channel>` or `<http://x|y>` repeated back in an
answer is escaped, never rendered as a mention or a disguised link; and clipping happens on the
raw text, so a cut never splits `&lt;`."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.config import Settings
from modeldeck.core.notify import blocks, kit
from modeldeck.core.notify.models import OutboxMessage
from modeldeck.core.rollouts import service as rollouts
from tests.bot.conftest import ADMIN, SEED, Bot, seed_world

# Slack sends `<`, `>` and `&` typed in a slash command as entities; the parser decodes them.
TYPED = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}
# Anything Slack would render: a mention, a broadcast, a link. (Escaped text has no `<`.)
RENDERED = re.compile(r"<[!@#]|<https?:")


def slack_sends(text: str) -> str:
    for entity, char in TYPED.items():
        text = text.replace(char, entity)
    return text


@pytest.mark.parametrize(
    "typed, shown",
    [
        ("<!channel> deploy now", "I don't know the command `&lt;!channel&gt;`"),
        (
            "status <http://evil.example|fraud-detector>",
            "`&lt;http://evil.example|fraud-detector&gt;` is not a model name",
        ),
        ("history fraud-detector in staging <!here>", "I did not expect `&lt;!here&gt;` here"),
        ("snooze <@U0ALICE> 2h", "`&lt;@U0ALICE&gt;` is not an alert number"),
        ("a&b", "I don't know the command `a&amp;b`"),
    ],
)
def test_input_repeated_in_an_error_is_escaped(bot: Bot, typed: str, shown: str) -> None:
    sent = bot.slack.command(slack_sends(typed), user=ADMIN)
    text = sent.text()
    assert shown in text
    assert not RENDERED.search(text), text


def test_raw_input_is_clipped_before_it_is_escaped(bot: Bot) -> None:
    word = "a" * 39 + "<" * 10  # the parser repeats 40 characters of an unknown command
    text = bot.slack.command(slack_sends(word), user=ADMIN).text()
    assert "`" + "a" * 39 + "&lt;`" in text
    assert "&l`" not in text and "&lt`" not in text


def test_clipped_mrkdwn_never_ends_inside_an_entity_or_a_reference() -> None:
    assert kit.escape_clip("<<<<", 9) == "&lt;&lt;…"
    assert kit.escape_clip("a<b", 10) == "a&lt;b"
    assert kit.clip_mrkdwn("ab&lt;cd", 5) == "ab…"
    link = "see <https://dash.example.org/model?model=a&env=b|the dashboard> now"
    assert kit.clip_mrkdwn(link, 30) == "see …"
    assert kit.clip_mrkdwn(link, len(link)) == link
    assert kit.clip_mrkdwn("x &amp; " + "y" * 50, 20) == "x &amp; " + "y" * 11 + "…"


def test_error_texts_keep_only_bare_user_and_channel_references() -> None:
    text = "use <#C01OPS> or ask <@U0BOB>, not <!channel> or <http://x|y> & co"
    assert kit.escape_text(text) == (
        "use <#C01OPS> or ask <@U0BOB>, not &lt;!channel&gt; or &lt;http://x|y&gt; &amp; co"
    )


@pytest.fixture
def world(settings: Settings, sqlite_engine: Engine) -> Session:
    seed_world(sqlite_engine, settings)
    return Session(sqlite_engine, expire_on_commit=False)


def test_a_long_reason_is_clipped_raw_then_escaped(world: Session, settings: Settings) -> None:
    dep = rollouts.promote(
        world,
        settings=settings,
        model="fraud-detector",
        version="1.2.0",
        environment="production",
        actor=SEED,
        reason="<" * 1999,
    )
    rendered = blocks.render(
        world,
        settings,
        OutboxMessage(channel="slack", kind="approval_request", payload={"deployment_id": dep.id}),
    )
    [reason] = [b for b in rendered["blocks"] if "*Reason*" in json.dumps(b)]
    text = reason["text"]["text"]
    assert len(text) <= 3000 and text.endswith("…")
    quoted = text.removeprefix("*Reason*\n>").removesuffix("…")
    assert quoted == "&lt;" * (len(quoted) // 4)  # whole entities only
