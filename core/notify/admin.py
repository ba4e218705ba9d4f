"""Operating the outbox: what waits or gave up, requeueing dead letters, and the alert that
says a notification was lost.

A dead letter (a permanent refusal, or a receiver down for give_up_after_hours) raises one
alert per channel (rule `notification_dead`, deduplicated like every alert), told on the other
channels when there are any: the channel that refuses messages is the last place to say so.
It resolves once that channel delivers again and has no dead letters left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from modeldeck.core import db, logs
from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Alert, Severity
from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.auth.service import require
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.errors import Conflict, InvalidInput, NotFound
from modeldeck.core.notify.models import OutboxMessage, OutboxMessagePublic, OutboxStatus
from modeldeck.core.notify.service import ANCHOR_KEYS, targets

log = logs.get("modeldeck.notify")
RULE = "notification_dead"
HINT = "fix the cause, then `modeldeck outbox requeue --all-dead`"


@dataclass(frozen=True)
class DeadLetter:
    """What the alert needs from a message that just went dead (read before its commit)."""

    id: int
    channel: str
    kind: str
    error: str
    alert_id: int | None

    @classmethod
    def of(cls, message: OutboxMessage) -> DeadLetter:
        alert_id = message.payload.get("alert_id") if message.kind.startswith("alert") else None
        return cls(
            id=int(message.id or 0),
            channel=message.channel,
            kind=message.kind,
            error=message.error or "",
            alert_id=int(alert_id) if alert_id is not None else None,
        )


def dead_count(session: Session, channel: str) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.channel == channel, OutboxMessage.status == OutboxStatus.dead)
        ).one()
    )


def alert_dead_letter(
    session: Session, *, settings: Settings, dead: DeadLetter, clock: Clock = utcnow
) -> Alert | None:
    """Fire (or refresh) the channel's `notification_dead` alert. Commits. Never raises: a
    failure here must not stop the delivery of the other messages."""
    try:
        if dead.alert_id is not None:
            about = session.get(Alert, dead.alert_id)
            if about is not None and about.rule == RULE:
                return None  # the alert about lost messages was lost too: do not loop
        count = dead_count(session, dead.channel)
        return alerts.fire(
            session,
            settings=settings,
            rule=RULE,
            severity=Severity.critical,
            summary=f"{count} notification(s) to {dead.channel} could not be delivered; "
            f"the last ({dead.kind} #{dead.id}): {dead.error}"[:2000],
            details={
                "metric": "dead letters",
                "value": count,
                "channel": dead.channel,
                "message_id": dead.id,
                "kind": dead.kind,
                "error": dead.error[:500],
                "hint": HINT,
            },
            key=dead.channel,
            clock=clock,
            skip_channels=_others_first(settings, dead.channel),
        )
    except Exception:
        session.rollback()
        log.exception("notify.dead_letter_alert_failed", message_id=dead.id)
        return None


def resolve_if_clear(
    session: Session, *, settings: Settings, channel: str, clock: Clock = utcnow
) -> Alert | None:
    """Resolve the channel's `notification_dead` alert once it has no dead letters left."""
    fp = alerts.fingerprint(RULE, None, None, None, channel)
    if alerts.open_alert(session, fp) is None or dead_count(session, channel):
        return None
    return alerts.resolve(
        session,
        settings=settings,
        rule=RULE,
        key=channel,
        clock=clock,
        skip_channels=_others_first(settings, channel),
    )


def _others_first(settings: Settings, channel: str) -> frozenset[str]:
    """Tell the other channels, not the one losing messages; it alone when there is none."""
    others = [c for c in targets(settings, "alert") if c != channel]
    return frozenset({channel}) if others else frozenset()


def list_messages(
    session: Session,
    *,
    statuses: Sequence[OutboxStatus] = (OutboxStatus.pending, OutboxStatus.dead),
    channel: str | None = None,
    limit: int = 200,
) -> list[OutboxMessagePublic]:
    """Messages waiting or given up (oldest first), with their last error."""
    query = select(OutboxMessage).where(col(OutboxMessage.status).in_(list(statuses)))
    if channel:
        query = query.where(OutboxMessage.channel == channel)
    rows = session.exec(query.order_by(col(OutboxMessage.id)).limit(max(1, min(limit, 1000)))).all()
    return [_public(row) for row in rows]


def _public(row: OutboxMessage) -> OutboxMessagePublic:
    about = next(
        (
            f"{key.removesuffix('_id')} {row.payload[key]}"
            for key in ANCHOR_KEYS
            if row.payload.get(key) is not None
        ),
        None,
    )
    return OutboxMessagePublic(
        id=int(row.id or 0),
        channel=row.channel,
        kind=row.kind,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        error=row.error,
        about=about,
    )


def requeue(
    session: Session,
    *,
    actor: Actor,
    message_ids: Sequence[int] = (),
    all_dead: bool = False,
    clock: Clock = utcnow,
) -> list[int]:
    """Give dead letters a new delivery period (admin; after fixing the cause): the named
    ones, or every dead one. All or nothing: an unknown id or a message that is not dead
    changes nothing. Commits with its audit event; returns the ids requeued."""
    require(actor, Role.admin, "requeue notifications")
    if bool(message_ids) == all_dead:
        raise InvalidInput(
            "name the messages to requeue or ask for all dead ones, not both or neither",
            hint="modeldeck outbox requeue ID… | --all-dead",
        )
    query = select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.dead)
    if message_ids:
        wanted = sorted(set(message_ids))
        found = {
            m.id: m
            for m in session.exec(
                select(OutboxMessage).where(
                    col(OutboxMessage.id).in_([i for i in wanted if db.possible_id(i)])
                )
            ).all()
        }
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"no outbox message with id {missing[0]}", hint="`modeldeck outbox`")
        alive = [m for m in found.values() if m.status != OutboxStatus.dead]
        if alive:
            raise Conflict(f"outbox message {alive[0].id} is {alive[0].status}, not dead")
        query = query.where(col(OutboxMessage.id).in_(wanted))
    rows = session.exec(query.order_by(col(OutboxMessage.id))).all()
    now = clock()
    for row in rows:
        row.status = OutboxStatus.pending
        row.attempts = 0
        row.next_attempt_at = now
        row.requeued_at = now
        session.add(row)
    ids = [int(r.id or 0) for r in rows]
    if ids:
        audit.record(
            session,
            actor=actor,
            action="outbox.requeue",
            target="outbox",
            after={"message_ids": ids},
            clock=clock,
        )
    session.commit()
    return ids
