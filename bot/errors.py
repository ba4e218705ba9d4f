"""The one error handler: domain errors become a friendly ephemeral answer, bugs a short apology.

Registered as bolt's global error handler (failures before or during the ack) and called by
every turn on the lazy pool (bolt does not see those failures).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from slack_bolt.context.respond import Respond

from modeldeck.bot.pacing import LazyPool
from modeldeck.bot.parser import ParseError
from modeldeck.core import logs
from modeldeck.core.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    ModeldeckError,
    NotFound,
    Unauthorized,
)
from modeldeck.core.notify import kit

log = logs.get("modeldeck.bot.errors")

ICONS: list[tuple[type[ModeldeckError], str]] = [
    (Forbidden, ":no_entry:"),
    (Unauthorized, ":no_entry:"),
    (NotFound, ":mag:"),
    (Conflict, ":warning:"),
    (InvalidInput, ":thinking_face:"),
    (BackendUnavailable, ":construction:"),
]
# Core's errors advise CLI commands (the CLI and the API are its first readers); in Slack the
# same advice is a slash command, a button or the dashboard.
SLACK_ADVICE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"`modeldeck models list`"), "`/modeldeck models`"),
    (re.compile(r"`modeldeck history`"), "`/modeldeck history MODEL`"),
    (re.compile(r"`modeldeck (alerts|history [a-z0-9._-]+)`"), r"`/modeldeck \1`"),
    (
        re.compile(r"`?modeldeck promote (\S+) (\S+) --to ([a-z0-9._-]+)`?"),
        r"`/modeldeck promote \1 \2 to \3`",
    ),
    (re.compile(r"`modeldeck reject (\d+)`"), r"the Reject button of request #\1"),
    (re.compile(r"`modeldeck resolve (\d+)`"), r"Resolve on the dashboard's Alerts page"),
]


def for_slack(text: str) -> str:
    """A core error text with its CLI advice put the way it is followed in Slack."""
    for pattern, advice in SLACK_ADVICE:
        text = pattern.sub(advice, text)
    return text


def friendly(error: Exception) -> dict[str, Any]:
    """The answer a person sees: what went wrong and, when known, what to do about it."""
    if isinstance(error, ModeldeckError):
        icon = next((i for kind, i in ICONS if isinstance(error, kind)), ":x:")
        text = f"{icon} {shown(error, error.message)}"
        blocks = [kit.section(text)]
        if error.hint:
            hint = shown(error, error.hint)
            blocks.append(kit.context(hint))
            text += f" ({hint})"
        return kit.message(text, blocks)
    text = (
        ":boom: Something went wrong inside modeldeck and the error was logged for the "
        "operators. Check `/modeldeck status` before you try again."
    )
    return kit.message(text, [kit.section(text)])


def shown(error: ModeldeckError, text: str) -> str:
    """Error texts are plain text and often repeat what was typed (`<!channel>`, a link):
    escaped for mrkdwn so they show as typed. Texts from the parser are all user input;
    others keep the bare `<@U…>` / `<#C…>` references core and the bot write themselves, and
    their CLI advice becomes Slack advice (`for_slack`).
    (Raw input is clipped where the message is built, so escaping never splits an entity.)"""
    return kit.escape(text) if isinstance(error, ParseError) else kit.escape_text(for_slack(text))


def report(error: Exception, respond: Respond | None, logger: logging.Logger | None) -> None:
    """Log the failure and tell the person who asked, privately."""
    if isinstance(error, ModeldeckError):
        log.info("slack.refused", error=type(error).__name__, detail=error.message)
    else:
        log.error("slack.failed", error=repr(error), exc_info=error)
    if respond is None or respond.response_url is None:
        return
    message = friendly(error)
    try:
        respond(
            text=message["text"],
            blocks=message["blocks"],
            response_type="ephemeral",
            replace_original=False,
        )
    except Exception as exc:  # Slack down: the log line above is all we can do
        log.warning("slack.respond_failed", error=repr(exc))


def error_handler(pool: LazyPool) -> Callable[..., None]:
    """bolt's global error handler. It runs on the ack path, which never waits on Slack: the
    answer is sent from the lazy pool."""

    def on_error(
        error: Exception, respond: Respond | None = None, logger: logging.Logger | None = None
    ) -> None:  # arguments are injected by name
        pool.submit(partial(report, error, respond, logger))

    return on_error
