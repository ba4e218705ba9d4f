"""Snoozing alerts: silence an open alert for a while, wake it when the time is up, and keep
the silence when a flapping check resolves the alert and opens it again.

A snooze silences a fingerprint, like an Alertmanager silence, not one alert row: when a
check resolves a snoozed alert and fires again before the snooze ends, the new alert starts
snoozed with the same end and author (audited as `alert.snooze_kept`), instead of paging
people who asked for quiet.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from modeldeck.core.alerts import lookup
from modeldeck.core.alerts.models import Alert, AlertPublic, AlertStatus
from modeldeck.core.alerts.public import to_public
from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import SYSTEM, Actor, Role
from modeldeck.core.auth.service import require
from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.errors import Conflict, InvalidInput
from modeldeck.core.metrics import ALERTS
from modeldeck.core.notify import service as notify

MAX_SNOOZE = timedelta(days=30)
# The one duration parser of every interface (API, CLI, dashboard, Slack): minutes to weeks.
# Seconds are refused: a snooze shorter than a minute silences nothing the scheduler would
# notice (it wakes snoozed alerts once a minute).
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([a-z]+)\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_UNIT_WORDS = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "m"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("d", "day", "days"), "d"),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), "w"),
}
DURATION_HINT = "use minutes, hours, days or weeks: 30m, 2h, 1d, 1w (at most 30d)"


def parse_duration(text: str) -> timedelta:
    """'30m', '2h', '1d', '1w' (or '2 hours', '3 days') → timedelta; anything else (or over
    30 days) is InvalidInput."""
    match = _DURATION.match(text or "")
    unit = _UNIT_WORDS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise InvalidInput(f"{text!r} is not a duration", hint=DURATION_HINT)
    duration = timedelta(**{_UNITS[unit]: int(match.group(1))})
    if duration <= timedelta(0):
        raise InvalidInput(f"{text!r}: a snooze must last at least 1 minute")
    if duration > MAX_SNOOZE:
        raise InvalidInput(
            f"{text!r} is longer than the 30-day maximum",
            hint="snooze for at most 30d; resolve the alert if it is not a problem",
        )
    return duration


def short_duration(duration: timedelta) -> str:
    """The shortest exact spelling parse_duration reads back: 90m, 2h, 3d, 1w."""
    minutes = int(duration.total_seconds() // 60)
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def snooze(
    session: Session,
    *,
    settings: Settings,
    alert_id: int,
    duration: timedelta,
    actor: Actor,
    clock: Clock = utcnow,
) -> AlertPublic:
    """Silence an open alert until now + duration (deployer role); it keeps being tracked and
    notifies again when the snooze ends if it still fires."""
    require(actor, Role.deployer, "snooze alerts")
    if duration <= timedelta(0) or duration > MAX_SNOOZE:
        raise InvalidInput("a snooze lasts between 1 minute and 30 days")
    alert = lookup.get(session, alert_id)
    if alert.status == AlertStatus.resolved:
        raise Conflict(f"alert {alert_id} is already resolved; there is nothing to snooze")
    before = {"status": alert.status, "snoozed_until": alert.snoozed_until}
    alert.status = AlertStatus.snoozed
    alert.snoozed_until = clock() + duration
    alert.snoozed_by = actor.name
    session.add(alert)
    audit.record(
        session,
        actor=actor,
        action="alert.snooze",
        target=lookup.target(alert),
        before=before,
        after={"status": "snoozed", "snoozed_until": alert.snoozed_until},
        clock=clock,
    )
    if alert.last_notified is not None:  # show "snoozed by … until …" on the posted message
        notify.publish(
            session,
            settings=settings,
            kind="alert_update",
            payload={"alert_id": alert.id, "text": alert.summary},
            clock=clock,
        )
    ALERTS.labels(alert.rule, str(alert.severity), "snooze").inc()
    session.commit()
    return to_public(session, [alert])[0]


def keep_snooze(session: Session, alert: Alert, clock: Clock) -> bool:
    """A newly opened alert starts snoozed while an earlier alert of its fingerprint was
    snoozed until later than now (no commit). True when it did."""
    now = clock()
    earlier = session.exec(
        select(Alert)
        .where(
            Alert.fingerprint == alert.fingerprint,
            Alert.status == AlertStatus.resolved,
            col(Alert.snoozed_until) > now,
            Alert.id != alert.id,
        )
        .order_by(col(Alert.snoozed_until).desc())
    ).first()
    if earlier is None or earlier.snoozed_until is None:
        return False
    alert.status = AlertStatus.snoozed
    alert.snoozed_until = earlier.snoozed_until
    alert.snoozed_by = earlier.snoozed_by
    session.add(alert)
    audit.record(
        session,
        actor=SYSTEM,
        action="alert.snooze_kept",
        target=lookup.target(alert),
        before={"status": "firing"},
        after={
            "status": "snoozed",
            "snoozed_until": alert.snoozed_until,
            "snoozed_by": alert.snoozed_by,
            "from_alert": earlier.id,
        },
        clock=clock,
    )
    return True


def snooze_over(alert: Alert, now: datetime) -> bool:
    return alert.snoozed_until is None or as_utc(alert.snoozed_until) <= now


def unsnooze(session: Session, alert: Alert, clock: Clock) -> None:
    audit.record(
        session,
        actor=SYSTEM,
        action="alert.unsnooze",
        target=lookup.target(alert),
        before={"snoozed_until": alert.snoozed_until, "snoozed_by": alert.snoozed_by},
        after={"status": "firing"},
        clock=clock,
    )
    alert.status = AlertStatus.firing
    alert.snoozed_until = None
    alert.snoozed_by = None


def wake_snoozed(session: Session, *, settings: Settings, clock: Clock = utcnow) -> int:
    """Un-snooze alerts whose snooze ended and notify them again; the scheduler runs this
    every minute so an alert that is not re-fired still comes back. Returns how many."""
    now = clock()
    rows = session.exec(
        select(Alert).where(Alert.status == AlertStatus.snoozed, col(Alert.snoozed_until) <= now)
    ).all()
    for alert in rows:
        unsnooze(session, alert, clock)
        notify.publish(
            session,
            settings=settings,
            kind="alert",
            payload={"alert_id": alert.id, "text": alert.summary},
            clock=clock,
        )
        alert.last_notified = now
        session.add(alert)
    if rows:
        session.commit()
    return len(rows)
