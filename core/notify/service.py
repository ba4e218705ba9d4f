"""The outbox: enqueue notifications inside the caller's transaction, deliver them later.

A state change and the message announcing it commit together (enqueue never commits), so an
alert is never lost when Slack is down or the process restarts. `drain` delivers due messages
in order, one committed step per message: retry with exponential backoff (a 429's
Retry-After wins), dead-letter after NotifyConfig.max_attempts with the error kept, and skip
messages for channels that are not configured instead of retrying them forever.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core import logs
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import NotifyConfig, Settings
from modeldeck.core.errors import InvalidInput
from modeldeck.core.metrics import NOTIFICATIONS
from modeldeck.core.notify import blocks
from modeldeck.core.notify.channels import (
    UPDATE_KINDS,
    Channel,
    DeliveryError,
    Skip,
    build_channels,
)
from modeldeck.core.notify.models import DrainReport, OutboxMessage, OutboxStatus

log = logs.get("modeldeck.notify")
ANCHOR_KEYS = ("alert_id", "deployment_id")


def enqueue(
    session: Session, *, channel: str, kind: str, payload: dict[str, Any], clock: Clock = utcnow
) -> OutboxMessage:
    """Queue one message in the caller's transaction (no commit).

    A message identical to one still waiting (same channel, kind and payload) is not queued
    twice: messages are rendered from the database at delivery time, so one is enough even
    when an alert repeats during a long Slack outage.
    """
    if not channel or len(channel) > 64:
        raise InvalidInput("channel must be 1-64 characters (slack, webhook:<name>)")
    if not kind or len(kind) > 64:
        raise InvalidInput("kind must be 1-64 characters")
    waiting = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.channel == channel,
            OutboxMessage.kind == kind,
            OutboxMessage.status == OutboxStatus.pending,
        )
    ).all()
    for message in waiting:
        if message.payload == payload:
            return message
    now = clock()
    message = OutboxMessage(
        channel=channel,
        kind=kind,
        payload=dict(payload),
        status=OutboxStatus.pending,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(message)
    session.flush()
    return message


def targets(settings: Settings, kind: str) -> list[str]:
    """The channels a kind of message goes to: Slack, plus every webhook that takes it."""
    return ["slack", *(f"webhook:{w.name}" for w in settings.notify.webhooks if kind in w.kinds)]


def publish(
    session: Session,
    *,
    settings: Settings,
    kind: str,
    payload: dict[str, Any],
    clock: Clock = utcnow,
) -> list[OutboxMessage]:
    """Enqueue a message to every channel that takes its kind (no commit)."""
    return [
        enqueue(session, channel=channel, kind=kind, payload=payload, clock=clock)
        for channel in targets(settings, kind)
    ]


def backoff(attempts: int, config: NotifyConfig) -> timedelta:
    """Exponential backoff after `attempts` failures: base, 2×base, 4×base… up to the cap."""
    seconds = config.backoff_seconds * 2 ** max(0, min(attempts - 1, 30))
    return timedelta(seconds=min(config.max_backoff_seconds, seconds))


def drain(
    session: Session,
    *,
    settings: Settings,
    channels: dict[str, Channel] | None = None,
    clock: Clock = utcnow,
    limit: int = 100,
) -> DrainReport:
    """Deliver up to `limit` due messages, oldest first; commit after each one.

    After a retryable failure the channel counts as down for the rest of this pass (its other
    messages wait without spending an attempt), so an outage costs one request per pass.
    """
    channels = channels if channels is not None else build_channels(settings)
    report = DrainReport()
    down: set[str] = set()
    due = session.exec(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == OutboxStatus.pending,
            col(OutboxMessage.next_attempt_at) <= clock(),
        )
        .order_by(col(OutboxMessage.id))
        .limit(limit)
    ).all()
    for message_id in due:
        message = _claim(session, message_id)
        if message is None:
            continue
        if message.channel in down or _waits_for_earlier(session, message):
            session.rollback()
            report.deferred += 1
            continue
        channel = channels.get(message.channel)
        outcome = _deliver(session, settings, message, channel, clock)
        session.commit()
        NOTIFICATIONS.labels(message.channel.partition(":")[0], outcome).inc()
        if outcome == "retried":
            down.add(message.channel)
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _claim(session: Session, message_id: int | None) -> OutboxMessage | None:
    """Lock one message (PostgreSQL: FOR UPDATE SKIP LOCKED) so two drainers never send it
    twice; None when another drainer has it or it is no longer pending."""
    bind = session.get_bind()
    query = select(OutboxMessage).where(OutboxMessage.id == message_id)
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    message = session.exec(query.execution_options(populate_existing=True)).first()
    if message is None or message.status != OutboxStatus.pending:
        session.rollback()
        return None
    return message


def _waits_for_earlier(session: Session, message: OutboxMessage) -> bool:
    """An update (resolve) must not overtake the post it edits: while an earlier message about
    the same alert/deployment is still pending on this channel, wait for it."""
    if message.kind not in UPDATE_KINDS:
        return False
    keys = {k: message.payload[k] for k in ANCHOR_KEYS if message.payload.get(k) is not None}
    if not keys:
        return False
    earlier = session.exec(
        select(OutboxMessage.payload).where(
            OutboxMessage.channel == message.channel,
            OutboxMessage.status == OutboxStatus.pending,
            col(OutboxMessage.id) < message.id,
        )
    ).all()
    return any(all(p.get(k) == v for k, v in keys.items()) for p in earlier)


def _deliver(
    session: Session,
    settings: Settings,
    message: OutboxMessage,
    channel: Channel | None,
    clock: Clock,
) -> str:
    """Send one message and record the outcome on it: sent, retried, skipped or dead."""
    now = clock()
    message.last_attempt_at = now
    session.add(message)
    if channel is None:
        message.status = OutboxStatus.skipped
        message.error = f"no channel {message.channel!r} is configured"
        return "skipped"
    try:
        content = blocks.render(session, settings, _as_rendered(message))
        channel.send(session, message, content)
    except Skip as exc:
        message.status = OutboxStatus.skipped
        message.error = str(exc)[:2000]
        return "skipped"
    except DeliveryError as exc:
        return _failed(message, exc, settings.notify, now)
    except Exception as exc:  # a rendering bug must not stop the other messages
        log.exception("notify.render_or_send_failed", message_id=message.id)
        return _failed(message, DeliveryError(f"{type(exc).__name__}: {exc}"), settings.notify, now)
    message.attempts += 1
    message.status = OutboxStatus.sent
    message.sent_at = now
    message.error = None
    log.info("notify.sent", message_id=message.id, channel=message.channel, kind=message.kind)
    return "sent"


def _as_rendered(message: OutboxMessage) -> OutboxMessage:
    # An alert_update (snoozed, acknowledged) shows the alert as it is now, which is exactly
    # what blocks.render draws for kind "alert": reuse it rather than teach render a new kind.
    if message.kind != "alert_update":
        return message
    return OutboxMessage(
        id=message.id, channel=message.channel, kind="alert", payload=message.payload
    )


def _failed(message: OutboxMessage, exc: DeliveryError, config: NotifyConfig, now: Any) -> str:
    # Rate limiting is the receiver pacing us, not a failure: it does not use up attempts.
    if not exc.rate_limited:
        message.attempts += 1
    message.error = str(exc)[:2000]
    if exc.permanent or message.attempts >= config.max_attempts:
        message.status = OutboxStatus.dead
        log.error(
            "notify.dead_letter",
            message_id=message.id,
            channel=message.channel,
            attempts=message.attempts,
            error=message.error,
        )
        return "dead"
    wait = (
        timedelta(seconds=exc.retry_after)
        if exc.retry_after is not None
        else backoff(message.attempts, config)
    )
    message.next_attempt_at = now + wait
    log.warning(
        "notify.retry",
        message_id=message.id,
        channel=message.channel,
        attempts=message.attempts,
        wait_seconds=wait.total_seconds(),
        error=message.error,
    )
    return "retried"


def requeue(session: Session, *, message_ids: list[int], clock: Clock = utcnow) -> int:
    """Give dead-lettered messages another round of attempts (after fixing the config);
    commits; returns how many were requeued."""
    rows = session.exec(
        select(OutboxMessage).where(
            col(OutboxMessage.id).in_(message_ids), OutboxMessage.status == OutboxStatus.dead
        )
    ).all()
    for row in rows:
        row.status = OutboxStatus.pending
        row.attempts = 0
        row.next_attempt_at = clock()
        session.add(row)
    session.commit()
    return len(rows)
