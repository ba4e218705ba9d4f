"""Small Block Kit pieces shared by every modeldeck Slack message (outbox and bot replies).

Messages are read on phones: short lines, one fact per field, dates that Slack renders in the
reader's own time zone, people as mentions (Slack shows their display name for free).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    LinkButtonElement,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from modeldeck.core.alerts.models import AlertStatus, Severity
from modeldeck.core.clock import as_utc
from modeldeck.core.config import Settings
from modeldeck.core.notify.actions import ActionId
from modeldeck.core.rollouts.models import DeploymentState

STATE_ICON: dict[DeploymentState, str] = {
    DeploymentState.pending: ":hourglass_flowing_sand:",
    DeploymentState.awaiting_approval: ":large_yellow_circle:",
    DeploymentState.rolling_out: ":arrows_counterclockwise:",
    DeploymentState.active: ":large_green_circle:",
    DeploymentState.failed: ":red_circle:",
    DeploymentState.rolled_back: ":leftwards_arrow_with_hook:",
    DeploymentState.superseded: ":white_circle:",
    DeploymentState.rejected: ":no_entry:",
}
SEVERITY_ICON: dict[Severity, str] = {
    Severity.info: ":information_source:",
    Severity.warning: ":warning:",
    Severity.critical: ":rotating_light:",
}
ALERT_ICON: dict[AlertStatus, str] = {
    AlertStatus.firing: ":red_circle:",
    AlertStatus.snoozed: ":zzz:",
    AlertStatus.resolved: ":white_check_mark:",
}
SECTION_LIMIT = 2900  # Slack allows 3000 characters per text object
FIELD_LIMIT = 1900  # and 2000 per field
VALUE_LIMIT = 2000  # a button's value
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_LONGEST_ENTITY = len("&amp;")
_SAFE_REF = re.compile(r"(<[@#][A-Z0-9]{2,20}>)")


def clip(text: str, limit: int) -> str:
    """Shorten raw `text` to `limit` characters with an ellipsis (Slack rejects longer texts).

    For text that is already mrkdwn (escaped, with `<…>` references) use `clip_mrkdwn`."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_mrkdwn(text: str, limit: int) -> str:
    """`clip` for mrkdwn: never cuts inside an entity (`&lt;`) or a `<…>` reference, which
    would show as garbage or as a broken link."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    amp = head.rfind("&")
    if amp >= len(head) - (_LONGEST_ENTITY - 1) and ";" not in head[amp:]:
        head = head[:amp]
    ref = head.rfind("<")
    if ref != -1 and ">" not in head[ref:]:
        head = head[:ref]
    return head + "…"


def mention(actor: str | None) -> str:
    """`slack:U123` becomes a mention (rendered as the display name); others stay as they are."""
    if not actor:
        return "-"
    if actor.startswith("slack:"):
        user = actor.removeprefix("slack:").split(" ", 1)[0]
        return f"<@{user}>"
    return f"`{actor}`"


def slack_date(when: datetime | None) -> str:
    """A date Slack shows in the reader's time zone, with a UTC fallback for old clients."""
    if when is None:
        return "-"
    utc = as_utc(when)
    fallback = utc.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def state_label(state: DeploymentState) -> str:
    return f"{STATE_ICON[state]} {state.value.replace('_', ' ')}"


def dashboard_url(settings: Settings, page: str, **params: str | int | None) -> str:
    """A link to a dashboard page; `None` parameters are left out."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    base = settings.dashboard_url.rstrip("/")
    return f"{base}/{page}" + (f"?{query}" if query else "")


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_clip(text: str, limit: int) -> str:
    """Raw text as mrkdwn of at most `limit` characters: clipped first, then escaped, so a
    cut never splits an entity."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    pieces: list[str] = []
    size = 0
    for char in text:
        piece = _ENTITIES.get(char, char)
        if size + len(piece) > limit - 1:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces) + "…"


def escape_text(text: str) -> str:
    """Escape plain text (an error message, a hint) for mrkdwn, keeping only the bare user
    and channel references modeldeck writes itself (`<@U…>`, `<#C…>`). Links, `<!channel>`,
    `<!here>` and group mentions are shown as typed, never rendered."""
    parts = _SAFE_REF.split(text)
    return "".join(part if i % 2 else escape(part) for i, part in enumerate(parts))


def header(text: str) -> dict[str, Any]:
    return HeaderBlock(text=PlainTextObject(text=clip(text, 150), emoji=True)).to_dict()


def section(text: str) -> dict[str, Any]:
    return SectionBlock(text=MarkdownTextObject(text=clip_mrkdwn(text, SECTION_LIMIT))).to_dict()


def fields(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """One section of up to ten `*label*\\nvalue` fields (two columns, stacked on phones)."""
    objs = [
        MarkdownTextObject(text=clip_mrkdwn(f"*{label}*\n{value}", FIELD_LIMIT))
        for label, value in list(pairs)[:10]
    ]
    return SectionBlock(fields=objs).to_dict()


def context(*parts: str) -> dict[str, Any]:
    elements = [MarkdownTextObject(text=clip_mrkdwn(p, 1900)) for p in parts if p][:10]
    return ContextBlock(elements=elements).to_dict()


def button(
    text: str,
    action: ActionId,
    value: str,
    *,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    if len(value) > VALUE_LIMIT:  # a clipped value is a damaged button: refuse to draw it
        raise ValueError(f"a button value is {len(value)} characters (Slack takes {VALUE_LIMIT})")
    return ButtonElement(
        text=PlainTextObject(text=clip(text, 75), emoji=True),
        action_id=action.value,
        value=value,
        style=style,
        confirm=confirm,
    )


def link_button(text: str, url: str) -> ButtonElement:
    button = LinkButtonElement(text=clip(text, 75), url=url)
    button.action_id = ActionId.open_dashboard.value
    return button


def confirm(title: str, text: str, yes: str, *, danger: bool = True) -> ConfirmObject:
    """The Block Kit confirmation dialog shown before a destructive click (DESIGN §10)."""
    return ConfirmObject(
        title=clip(title, 100),
        text=MarkdownTextObject(text=clip_mrkdwn(text, 300)),
        confirm=clip(yes, 30),
        deny="Cancel",
        style="danger" if danger else "primary",
    )


def actions(block_id: str, elements: list[ButtonElement]) -> dict[str, Any]:
    return ActionsBlock(block_id=block_id, elements=elements).to_dict()


def message(text: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """{"text": notification fallback, "blocks": [...]} as chat.postMessage and respond take."""
    return {"text": clip_mrkdwn(text, 3000), "blocks": blocks[:50]}
