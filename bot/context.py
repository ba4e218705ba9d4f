"""What a listener works with: the process-wide dependencies and one turn of conversation.

Every listener acks at once and leaves the work to the lazy pool (bot/pacing.py).
`ack_first(...)` turns a `handler(turn)` into such a listener; on the pool it resolves who is
asking, runs the handler, sends failures to the one error handler and writes the audit event
for the turn.

Not bolt's `lazy=[...]` listeners: for those bolt deep-copies the request, whose context holds
a Web API client and half a dozen helpers built around it — most of the cost of an ack. The
request thread is done with the request once it is acked, so the pool takes it as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import structlog
from slack_bolt import Ack, BoltContext
from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.bot import errors
from modeldeck.bot.identity import GroupDirectory, request_actor
from modeldeck.bot.pacing import LazyPool
from modeldeck.core import db, logs
from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.errors import ModeldeckError

log = logs.get("modeldeck.bot")
Message = dict[str, Any]


@dataclass(frozen=True)
class BotDeps:
    """Shared by every request: settings, database, clock, the user-group cache, the pool the
    work runs on."""

    settings: Settings
    engine: Engine
    directory: GroupDirectory
    clock: Clock = utcnow
    pool: LazyPool = field(default_factory=LazyPool)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with db.session_scope(self.engine) as session:
            yield session


@dataclass
class Turn:
    """One slash command or click: who, where, and how to answer."""

    deps: BotDeps
    actor: Actor
    body: dict[str, Any]
    client: WebClient
    respond: Respond
    logger: logging.Logger
    audit_target: str = ""
    audit_details: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.deps.settings

    @property
    def clock(self) -> Clock:
        return self.deps.clock

    @property
    def user_id(self) -> str:
        return str(self.body.get("user_id") or (self.body.get("user") or {}).get("id") or "")

    @property
    def channel_id(self) -> str | None:
        channel = self.body.get("channel_id") or (self.body.get("channel") or {}).get("id")
        return str(channel) if channel else None

    @property
    def trigger_id(self) -> str:
        return str(self.body.get("trigger_id") or "")

    def session(self) -> AbstractContextManager[Session]:
        # Acks first (bot/pacing.py); before the session, so no transaction waits with it.
        self.deps.pool.gate.step_aside()
        return self.deps.session()

    def reply(self, message: Message, *, public: bool = False, replace: bool = False) -> None:
        """Answer through the response_url: ephemeral unless `public`."""
        self.deps.pool.gate.step_aside()
        response = self.respond(
            text=message["text"],
            blocks=message.get("blocks"),
            response_type="in_channel" if public else "ephemeral",
            replace_original=replace,
        )
        if response.status_code != 200:  # expired response_url (30 min) or Slack trouble
            log.warning(
                "slack.reply_refused", status=response.status_code, body=str(response.body)[:200]
            )


Handler = Callable[[Turn], None]
Listener = Callable[[Ack, dict[str, Any], BoltContext, WebClient, Respond, logging.Logger], None]


def ack_first(kind: Literal["command", "action"]) -> Callable[[Handler], Listener]:
    """Make `handler(turn)` a bolt listener that acks, then runs the handler on the lazy pool
    with the person's Actor, error reporting and an audit event."""

    def wrap(handler: Handler) -> Listener:
        def listener(
            ack: Ack,
            body: dict[str, Any],
            context: BoltContext,
            client: WebClient,
            respond: Respond,
            logger: logging.Logger,
        ) -> None:
            ack()
            deps: BotDeps = context["deps"]
            deps.pool.submit(
                partial(run, handler, kind, deps, body, context, client, respond, logger)
            )

        # bolt injects arguments by the listener's signature and logs it by __name__
        listener.__name__ = handler.__name__
        listener.__qualname__ = handler.__qualname__
        return listener

    return wrap


def run(
    handler: Handler,
    kind: str,
    deps: BotDeps,
    body: dict[str, Any],
    context: BoltContext,
    client: WebClient,
    respond: Respond,
    logger: logging.Logger,
) -> None:
    """One turn, on the lazy pool: who is asking (role, groups, workspace), then the work."""
    actor = request_actor(
        deps.settings.roles, deps.directory, deps.settings.slack.allowed_teams, body, context
    )
    turn = Turn(deps=deps, actor=actor, body=body, client=client, respond=respond, logger=logger)
    structlog.contextvars.bind_contextvars(request_id=actor.request_id, slack_user=turn.user_id)
    outcome, problem = "ok", None
    try:
        handler(turn)
    except Exception as exc:  # every failure gets an answer, never silence
        outcome = "refused" if isinstance(exc, ModeldeckError) else "error"
        problem = str(exc)
        errors.report(exc, turn.respond, turn.logger)
    finally:
        record_turn(turn, kind, outcome, problem)
        structlog.contextvars.unbind_contextvars("request_id", "slack_user")


def record_turn(turn: Turn, kind: str, outcome: str, problem: str | None) -> None:
    """Every command and click goes to the audit log with the Slack user, whatever happened."""
    details: dict[str, Any] = {"channel": turn.channel_id, "outcome": outcome, **turn.audit_details}
    if kind == "command":
        details["text"] = str(turn.body.get("text") or "")[:500]
    else:
        action = (turn.body.get("actions") or [{}])[0]
        details["action_id"] = action.get("action_id")
        details["value"] = str(action.get("value") or "")[:500]
    if problem:
        details["error"] = problem[:500]
    target = turn.audit_target or f"slack:{turn.channel_id or 'unknown'}"
    try:
        with turn.session() as session:
            audit.record(
                session,
                actor=turn.actor,
                action=f"slack.{kind}",
                target=target,
                after=details,
                clock=turn.clock,
            )
            session.commit()
    except Exception:  # the answer already went out; a lost audit row must at least be loud
        log.exception("slack.audit_failed", kind=kind, target=target)
