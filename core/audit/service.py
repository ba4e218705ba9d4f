"""Write and read the audit log. Writing only adds to the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from modeldeck.core.audit.models import AuditEvent, AuditEventPublic, AuditEventsPublic
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import Clock, as_utc, utcnow

SECRET_HINTS = ("token", "secret", "password", "hash", "authorization")


def _scrub(value: Any) -> Any:
    """Secrets never reach the audit log, whatever a caller passes."""
    if isinstance(value, dict):
        return {
            k: ("***" if any(h in str(k).lower() for h in SECRET_HINTS) else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    return value


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    clock: Clock = utcnow,
) -> AuditEvent:
    """Add an audit event to the session; it commits (or not) with the change it describes."""
    event = AuditEvent(
        at=clock(),
        actor=actor.name,
        via=actor.via,
        action=action,
        target=target,
        before=_scrub(before),
        after=_scrub(after),
        request_id=actor.request_id,
    )
    session.add(event)
    return event


def to_public(event: AuditEvent) -> AuditEventPublic:
    data = event.model_dump()
    data["at"] = as_utc(event.at)
    return AuditEventPublic(**data)


def search(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    text: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> AuditEventsPublic:
    """Newest first. `target` matches a prefix ("model:fraud" finds its versions too)."""
    query = select(AuditEvent)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    if target:
        # autoescape: '_' and '%' in a model name are literal characters, not wildcards
        query = query.where(col(AuditEvent.target).startswith(target, autoescape=True))
    if text:
        query = query.where(
            col(AuditEvent.target).icontains(text, autoescape=True)
            | col(AuditEvent.action).icontains(text, autoescape=True)
            | col(AuditEvent.actor).icontains(text, autoescape=True)
        )
    # SQLite compares timestamps as text: compare in UTC, as they are stored.
    if since:
        query = query.where(AuditEvent.at >= as_utc(since))
    if until:
        query = query.where(AuditEvent.at < as_utc(until))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return AuditEventsPublic(data=[to_public(r) for r in rows], count=total)
