"""fire / resolve / snooze / resolve_by: dedup, repeat, snooze expiry, RBAC and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core.alerts import service
from modeldeck.core.alerts import snooze as service_snooze
from modeldeck.core.alerts.models import Alert, AlertStatus, Severity
from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock, as_utc
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from modeldeck.core.notify.models import OutboxStatus
from modeldeck.core.rollouts.models import Deployment
from tests.core.alerts.world import live_deployment, outbox, snapshot


def _fire(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    dep: Deployment,
    rule: str = "gpu_idle",
    key: str = "",
) -> Alert:
    return service.fire(
        session,
        settings=settings,
        rule=rule,
        severity=Severity.warning,
        summary="GPU idle for 6h",
        details={"metric": "gpu_util", "value": 0.0},
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        key=key,
        clock=clock,
    )


def _sent(session: Session) -> None:
    """Pretend the outbox delivered everything (delivery itself is tested in tests/core/notify)."""
    for message in outbox(session):
        message.status = OutboxStatus.sent
        session.add(message)
    session.commit()


def test_fire_opens_one_alert_and_notifies_once(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    first = _fire(session, settings, clock, dep)
    _sent(session)
    clock.advance(minutes=15)
    second = _fire(session, settings, clock, dep)

    assert second.id == first.id
    assert second.count == 2 and second.status == AlertStatus.firing
    messages = outbox(session)
    assert [(m.channel, m.kind, m.payload["alert_id"]) for m in messages] == [
        ("slack", "alert", first.id)
    ]
    assert second.details["dashboard_url"].endswith(f"/alerts?alert={first.id}")
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "alert.fire")).all()
    assert len(events) == 1 and events[0].actor == "modeldeck"


def test_fingerprint_separates_rule_key_and_environment(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    a = _fire(session, settings, clock, dep, key="gpu-0")
    b = _fire(session, settings, clock, dep, key="gpu-1")
    c = _fire(session, settings, clock, dep, rule="other", key="gpu-0")
    assert len({a.id, b.id, c.id}) == 3
    assert service.fingerprint("r", 1, 2, 3) != service.fingerprint("r", 1, 2, 4)
    assert len(service.fingerprint("r", None, None, None)) == 64


def test_repeat_interval_renotifies_a_still_firing_alert(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    _fire(session, settings, clock, dep)
    _sent(session)
    clock.advance(hours=3, minutes=59)
    _fire(session, settings, clock, dep)
    assert len(outbox(session)) == 1  # inside the 4 h repeat interval
    clock.advance(minutes=1)
    alert = _fire(session, settings, clock, dep)
    assert [m.kind for m in outbox(session)] == ["alert", "alert"]
    assert alert.last_notified is not None and as_utc(alert.last_notified) == clock()


def test_repeat_during_an_outage_does_not_queue_a_second_copy(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    _fire(session, settings, clock, dep)
    clock.advance(hours=5)  # the first message is still waiting (Slack down)
    _fire(session, settings, clock, dep)
    assert len(outbox(session)) == 1


def test_resolve_notifies_and_a_new_firing_opens_a_new_alert(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    alert = _fire(session, settings, clock, dep)
    clock.advance(minutes=30)
    resolved = service.resolve(
        session,
        settings=settings,
        rule="gpu_idle",
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        clock=clock,
    )
    assert resolved is not None and resolved.id == alert.id
    assert resolved.status == AlertStatus.resolved and resolved.resolved_at is not None
    assert as_utc(resolved.resolved_at) == clock()
    assert resolved.resolved_by is None  # resolved by itself, not a person
    assert [m.kind for m in outbox(session)] == ["alert", "alert_resolved"]
    assert (
        service.resolve(
            session,
            settings=settings,
            rule="gpu_idle",
            model_id=dep.model_id,
            version_id=dep.version_id,
            environment_id=dep.environment_id,
            clock=clock,
        )
        is None
    )
    again = _fire(session, settings, clock, dep)
    assert again.id != alert.id and again.count == 1


def test_resolve_without_a_notification_stays_quiet(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    service.fire(
        session,
        settings=settings,
        rule="shadowed",
        severity=Severity.info,
        summary="s",
        details={},
        model_id=dep.model_id,
        clock=clock,
        notify_people=False,
    )
    service.resolve(session, settings=settings, rule="shadowed", model_id=dep.model_id, clock=clock)
    assert outbox(session) == []


def test_snoozed_alert_is_silent_until_the_snooze_ends(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, deployer: Actor
) -> None:
    alert = _fire(session, settings, clock, dep)
    assert alert.id is not None
    _sent(session)
    public = service.snooze(
        session,
        settings=settings,
        alert_id=alert.id,
        duration=service.parse_duration("2h"),
        actor=deployer,
        clock=clock,
    )
    assert public.status == AlertStatus.snoozed
    assert public.snoozed_by == "carol" and public.snoozed_until == clock() + timedelta(hours=2)
    assert [m.kind for m in outbox(session)] == ["alert", "alert_update"]  # edit the post
    _sent(session)

    clock.advance(hours=1, minutes=59)
    assert _fire(session, settings, clock, dep).status == AlertStatus.snoozed
    assert len(outbox(session)) == 2  # silent while snoozed, even past nothing

    clock.advance(minutes=1)
    woke = _fire(session, settings, clock, dep)
    assert woke.status == AlertStatus.firing and woke.snoozed_until is None
    assert [m.kind for m in outbox(session)][-1] == "alert"
    actions = session.exec(
        select(AuditEvent.action).where(AuditEvent.target == f"alert:{alert.id}")
    ).all()
    assert actions == ["alert.fire", "alert.snooze", "alert.unsnooze"]


def test_wake_snoozed_brings_back_alerts_nobody_refires(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, deployer: Actor
) -> None:
    alert = _fire(session, settings, clock, dep)
    assert alert.id is not None
    service.snooze(
        session,
        settings=settings,
        alert_id=alert.id,
        duration=timedelta(minutes=30),
        actor=deployer,
        clock=clock,
    )
    assert service.wake_snoozed(session, settings=settings, clock=clock) == 0
    clock.advance(minutes=30)
    assert service.wake_snoozed(session, settings=settings, clock=clock) == 1
    assert service.get_alert(session, alert.id).status == AlertStatus.firing


def test_resolve_by_a_person_is_audited(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, deployer: Actor
) -> None:
    alert = _fire(session, settings, clock, dep)
    assert alert.id is not None
    public = service.resolve_by(
        session, settings=settings, alert_id=alert.id, actor=deployer, clock=clock
    )
    assert public.status == AlertStatus.resolved and public.resolved_by == "carol"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "alert.resolve")).one()
    assert event.actor == "carol" and event.via == "cli"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        (" 2H ", timedelta(hours=2)),
        ("30d", timedelta(days=30)),
        ("1w", timedelta(weeks=1)),
        ("4W", timedelta(weeks=4)),
        ("2 hours", timedelta(hours=2)),
        ("90 mins", timedelta(minutes=90)),
        ("3 days", timedelta(days=3)),
        ("1 week", timedelta(weeks=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert service.parse_duration(text) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        ("2x", "is not a duration"),
        ("-1h", "is not a duration"),
        ("999d", "30-day maximum"),
        ("", "is not a duration"),
        ("0m", "at least 1 minute"),
        ("1.5h", "is not a duration"),
        ("31d", "30-day maximum"),
        ("h", "is not a duration"),
        ("30s", "is not a duration"),  # seconds: too short to be a snooze
        ("45 seconds", "is not a duration"),
        ("5w", "30-day maximum"),
        ("2 fortnights", "is not a duration"),
    ],
)
def test_bad_durations_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        service.parse_duration(text)


def test_refused_snoozes_and_resolves_change_nothing(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    dep: Deployment,
    deployer: Actor,
    viewer: Actor,
) -> None:
    alert = _fire(session, settings, clock, dep)
    assert alert.id is not None
    done = _fire(session, settings, clock, dep, rule="done")
    assert done.id is not None
    service.resolve_by(session, settings=settings, alert_id=done.id, actor=deployer, clock=clock)
    before = snapshot(session)
    two_hours = timedelta(hours=2)
    with pytest.raises(NotFound, match="no alert with id 999"):
        service.snooze(
            session,
            settings=settings,
            alert_id=999,
            duration=two_hours,
            actor=deployer,
            clock=clock,
        )
    with pytest.raises(Forbidden, match="snooze alerts needs the deployer role; dave is viewer"):
        service.snooze(
            session,
            settings=settings,
            alert_id=alert.id,
            duration=two_hours,
            actor=viewer,
            clock=clock,
        )
    with pytest.raises(Forbidden):
        service.resolve_by(session, settings=settings, alert_id=alert.id, actor=viewer, clock=clock)
    with pytest.raises(Conflict, match="already resolved; there is nothing to snooze"):
        service.snooze(
            session,
            settings=settings,
            alert_id=done.id,
            duration=two_hours,
            actor=deployer,
            clock=clock,
        )
    with pytest.raises(Conflict, match="already resolved"):
        service.resolve_by(
            session, settings=settings, alert_id=done.id, actor=deployer, clock=clock
        )
    with pytest.raises(InvalidInput):
        service.snooze(
            session,
            settings=settings,
            alert_id=alert.id,
            duration=timedelta(days=31),
            actor=deployer,
            clock=clock,
        )
    with pytest.raises(NotFound, match="no model named 'nope'"):
        service.list_alerts(session, model="nope")
    assert snapshot(session) == before


def test_list_alerts_filters(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, deployer: Actor
) -> None:
    a = _fire(session, settings, clock, dep)
    clock.advance(minutes=1)
    b = _fire(session, settings, clock, dep, rule="other")
    assert b.id is not None
    service.resolve_by(session, settings=settings, alert_id=b.id, actor=deployer, clock=clock)
    assert [x.id for x in service.list_alerts(session)] == [b.id, a.id]
    firing = service.list_alerts(session, status=AlertStatus.firing, model="fraud")
    assert [(x.id, x.model, x.version, x.environment) for x in firing] == [
        (a.id, "fraud", "1.0.0", "production")
    ]
    assert service.list_alerts(session, limit=1)[0].id == b.id


@pytest.mark.parametrize(
    "duration, text",
    [
        (timedelta(minutes=90), "90m"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=3), "3d"),
        (timedelta(weeks=2), "2w"),
        (timedelta(days=30), "30d"),
    ],
)
def test_short_duration_reads_back(duration: timedelta, text: str) -> None:
    assert service_snooze.short_duration(duration) == text
    assert service.parse_duration(text) == duration


@pytest.fixture
def any_session(any_engine: Engine, settings: Settings) -> Iterator[Session]:
    with Session(any_engine, expire_on_commit=False) as s:
        environments.sync(s, settings)
        yield s


@pytest.mark.parametrize("alert_id", [10**23, 2**63, 2**63 - 1, 2**31, 0, -1])
def test_an_id_no_alert_can_have_is_not_found_and_changes_nothing(
    any_session: Session, settings: Settings, clock: FixedClock, deployer: Actor, alert_id: int
) -> None:
    """Numbers beyond the id column's range are a miss, not a database error (SQLite: an
    OverflowError past 64 bits; PostgreSQL: "integer out of range" past 32)."""
    session = any_session
    _fire(session, settings, clock, live_deployment(session, at=clock() - timedelta(days=2)))
    before = snapshot(session)
    with pytest.raises(NotFound, match=f"no alert with id {alert_id}"):
        service.get_alert(session, alert_id)
    with pytest.raises(NotFound, match="no alert with id"):
        service.snooze(
            session,
            settings=settings,
            alert_id=alert_id,
            duration=timedelta(hours=2),
            actor=deployer,
            clock=clock,
        )
    with pytest.raises(NotFound, match="no alert with id"):
        service.resolve_by(
            session, settings=settings, alert_id=alert_id, actor=deployer, clock=clock
        )
    assert snapshot(session) == before
