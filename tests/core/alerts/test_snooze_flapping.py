"""A snooze silences a fingerprint: a flapping check (resolve, fire, resolve…) stays quiet
until the snooze ends, and only then notifies."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from modeldeck.core.alerts import service
from modeldeck.core.alerts.models import Alert, AlertStatus, Severity
from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock, as_utc
from modeldeck.core.config import Settings
from modeldeck.core.rollouts.models import Deployment
from tests.core.alerts.world import outbox


def _fire(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, key: str = ""
) -> Alert:
    return service.fire(
        session,
        settings=settings,
        rule="quality",
        severity=Severity.critical,
        summary="country 38% missing",
        details={"metric": "missing share"},
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        key=key,
        clock=clock,
    )


def _resolve(session: Session, settings: Settings, clock: FixedClock, dep: Deployment) -> None:
    service.resolve(
        session,
        settings=settings,
        rule="quality",
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        clock=clock,
    )


def _alert_messages(session: Session) -> list[tuple[int | None, str]]:
    return [(m.payload.get("alert_id"), m.kind) for m in outbox(session)]


def test_a_flapping_check_keeps_the_snooze_until_it_ends(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, deployer: Actor
) -> None:
    first = _fire(session, settings, clock, dep)
    assert first.id is not None
    service.snooze(
        session,
        settings=settings,
        alert_id=first.id,
        duration=timedelta(hours=2),
        actor=deployer,
        clock=clock,
    )
    until = clock() + timedelta(hours=2)
    told = _alert_messages(session)
    assert told == [(first.id, "alert"), (first.id, "alert_update")]

    for _ in range(3):  # healthy for one check, failing the next, for 1.5 hours
        clock.advance(minutes=15)
        _resolve(session, settings, clock, dep)
        clock.advance(minutes=15)
        again = _fire(session, settings, clock, dep)
        assert again.id != first.id
        assert again.status == AlertStatus.snoozed
        assert again.snoozed_until is not None and as_utc(again.snoozed_until) == until
        assert again.snoozed_by == "carol"
    # the posted alert was edited (resolved) once; nobody was paged for the new ones
    new_kinds = [kind for _, kind in _alert_messages(session)[len(told) :]]
    assert new_kinds == ["alert_resolved"]

    kept = session.exec(
        select(AuditEvent)
        .where(AuditEvent.action == "alert.snooze_kept")
        .order_by(col(AuditEvent.id))
    ).all()
    assert len(kept) == 3 and all(e.actor == "modeldeck" for e in kept)
    assert kept[0].after is not None and kept[0].after["snoozed_by"] == "carol"
    assert kept[0].after["from_alert"] == first.id

    clock.advance(minutes=31)  # the snooze is over: the open alert wakes and notifies
    assert service.wake_snoozed(session, settings=settings, clock=clock) == 1
    [current] = session.exec(select(Alert).where(col(Alert.status) == AlertStatus.firing)).all()
    assert _alert_messages(session)[-1] == (current.id, "alert")


def test_after_the_snooze_ended_a_new_alert_notifies_at_once(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, deployer: Actor
) -> None:
    first = _fire(session, settings, clock, dep)
    assert first.id is not None
    service.snooze(
        session,
        settings=settings,
        alert_id=first.id,
        duration=timedelta(minutes=30),
        actor=deployer,
        clock=clock,
    )
    clock.advance(minutes=10)
    _resolve(session, settings, clock, dep)
    clock.advance(minutes=20)  # exactly when the snooze ends
    again = _fire(session, settings, clock, dep)
    assert again.status == AlertStatus.firing and again.snoozed_until is None
    assert _alert_messages(session)[-1] == (again.id, "alert")


def test_a_snooze_of_one_fingerprint_does_not_silence_another(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, deployer: Actor
) -> None:
    first = _fire(session, settings, clock, dep, key="country")
    assert first.id is not None
    service.snooze(
        session,
        settings=settings,
        alert_id=first.id,
        duration=timedelta(hours=2),
        actor=deployer,
        clock=clock,
    )
    other = _fire(session, settings, clock, dep, key="plan")
    assert other.status == AlertStatus.firing
    assert _alert_messages(session)[-1] == (other.id, "alert")
