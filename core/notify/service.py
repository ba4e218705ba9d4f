"""The outbox: enqueue notifications inside the caller's transaction, deliver them later.

A state change and the message announcing it commit together (enqueue never commits), so an
alert is never lost when Slack is down or the process restarts. `drain` delivers due messages
in order, one committed step per message. While a receiver is down (unreachable, 5xx, 429,
Slack's transient errors) a message retries with capped exponential backoff for
NotifyConfig.give_up_after_hours; a 429 holds the whole channel until its Retry-After. A
permanent refusal dead-letters at once, any other failure (a rendering bug) after
max_attempts; a dead letter keeps its error and raises an alert (notify/admin.py). Messages for
channels that are not configured are skipped instead of retried forever.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core import logs
from modeldeck.core.clock import Clock, as_utc, utcnow
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
    skip_channels: frozenset[str] = frozenset(),
) -> list[OutboxMessage]:
    """Enqueue a message to every channel that takes its kind, except `skip_channels` (no
    commit)."""
    return [
        enqueue(session, channel=channel, kind=kind, payload=payload, clock=clock)
        for channel in targets(settings, kind)
        if channel not in skip_channels
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
    from modeldeck.core.notify import admin  # admin raises alerts, and alerts import us

    channels = channels if channels is not None else build_channels(settings)
    report = DrainReport()
    down: set[str] = set()
    delivered: set[str] = set()
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
        message = _claim(session, message_id, clock())
        if message is None:
            continue
        if message.channel in down or _waits_for_earlier(session, message):
            session.rollback()
            report.deferred += 1
            continue
        channel = channels.get(message.channel)
        outcome = _deliver(session, settings, message, channel, clock)
        dead = admin.DeadLetter.of(message) if outcome == "dead" else None
        session.commit()
        NOTIFICATIONS.labels(message.channel.partition(":")[0], outcome).inc()
        if outcome == "retried":
            down.add(message.channel)
        elif outcome == "sent":
            delivered.add(message.channel)
        elif dead is not None:
            admin.alert_dead_letter(session, settings=settings, dead=dead, clock=clock)
        setattr(report, outcome, getattr(report, outcome) + 1)
    for name in sorted(delivered):
        admin.resolve_if_clear(session, settings=settings, channel=name, clock=clock)
    return report


def _claim(session: Session, message_id: int | None, now: datetime) -> OutboxMessage | None:
    """Lock one message (PostgreSQL: FOR UPDATE SKIP LOCKED) so two drainers never send it
    twice; None when another drainer has it, it is no longer pending, or its channel was put
    on hold after the list of due messages was read."""
    query = select(OutboxMessage).where(OutboxMessage.id == message_id)
    if _postgres(session):
        query = query.with_for_update(skip_locked=True)
    message = session.exec(query.execution_options(populate_existing=True)).first()
    if (
        message is None
        or message.status != OutboxStatus.pending
        or as_utc(message.next_attempt_at) > now
    ):
        session.rollback()
        return None
    return message


def _postgres(session: Session) -> bool:
    bind = session.get_bind()
    return isinstance(bind, Engine) and bind.dialect.name == "postgresql"


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
        return _failed(session, message, exc, settings.notify, now)
    except Exception as exc:  # a rendering bug must not stop the other messages
        log.exception("notify.render_or_send_failed", message_id=message.id)
        error = DeliveryError(f"{type(exc).__name__}: {exc}", outage=False)
        return _failed(session, message, error, settings.notify, now)
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


def _failed(
    session: Session,
    message: OutboxMessage,
    exc: DeliveryError,
    config: NotifyConfig,
    now: datetime,
) -> str:
    # Rate limiting is the receiver pacing us, not a failure: it does not use up attempts.
    if not exc.rate_limited:
        message.attempts += 1
    message.error = str(exc)[:2000]
    waited = now - as_utc(message.requeued_at or message.created_at)
    give_up = timedelta(hours=config.give_up_after_hours)
    if exc.permanent or (
        waited >= give_up if exc.outage else message.attempts >= config.max_attempts
    ):
        if not exc.permanent and exc.outage:
            message.error = f"gave up after {_duration(waited)} of trying: {message.error}"[:2000]
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
    if exc.rate_limited:
        _hold_channel(session, message, now + wait)
    log.warning(
        "notify.retry",
        message_id=message.id,
        channel=message.channel,
        attempts=message.attempts,
        wait_seconds=wait.total_seconds(),
        error=message.error,
    )
    return "retried"


def _hold_channel(session: Session, message: OutboxMessage, until: datetime) -> None:
    """A 429 paces the whole channel, not one message: no pending message of the channel is
    due before Retry-After (committed with the message that got the 429). Rows another drainer
    holds are skipped, not waited for (it is sending them; two holds must not deadlock)."""
    rows = select(OutboxMessage.id).where(
        OutboxMessage.channel == message.channel,
        OutboxMessage.status == OutboxStatus.pending,
        col(OutboxMessage.next_attempt_at) < until,
        OutboxMessage.id != message.id,
    )
    if _postgres(session):
        rows = rows.with_for_update(skip_locked=True)
    session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(rows))
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )


def _duration(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
