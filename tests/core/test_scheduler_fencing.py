"""The scheduler's safety nets: crash markers never sit beside real results, and a leader
that lost its lock commits nothing more and waits for its jobs before leading again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from modeldeck.core import scheduler as scheduling
from modeldeck.core.alerts.models import Alert
from modeldeck.core.clock import Clock, FixedClock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.monitoring import flows
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.rollouts.models import Deployment
from modeldeck.core.scheduler import Scheduler
from modeldeck.core.scheduler_lock import LostLeadership, PgAdvisoryLock
from tests.conftest import make_settings
from tests.core.alerts.world import live_deployment
from tests.utils.servers import wait_until

FAST = {
    "leader_poll_seconds": 0.05,
    "drain_seconds": 3600,
    "sync_seconds": 3600,
    "rollouts_seconds": 3600,
    "reconcile_seconds": 3600,
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, scheduler=FAST)


@pytest.fixture
def dep(session: Session, clock: FixedClock) -> Deployment:
    return live_deployment(session, at=clock() - timedelta(days=1))


@pytest.fixture
def running() -> Iterator[list[Scheduler]]:
    started: list[Scheduler] = []
    yield started
    for s in started:
        s.stop(timeout=30)


def _results(engine: Engine) -> list[tuple[CheckKind, CheckStatus, str]]:
    with Session(engine) as session:
        rows = session.exec(select(CheckResult).order_by(CheckResult.id)).all()
        return [(r.kind, r.status, r.message) for r in rows]


def _store(
    session: Session, deployment_id: int, kind: CheckKind, status: CheckStatus, end: datetime
) -> CheckResult:
    result = CheckResult(
        deployment_id=deployment_id,
        kind=kind,
        status=status,
        window_start=end - timedelta(hours=1),
        window_end=end,
        rows=100,
        message=f"real {kind}",
        details={"problems": ["country: 38% missing (max 5%)"]},
    )
    session.add(result)
    session.commit()
    return result


def _quality_ok(
    session: Session, *, deployment_id: int, window_end: datetime | None = None, **_: Any
) -> list[CheckResult]:
    assert window_end is not None
    return [_store(session, deployment_id, CheckKind.quality, CheckStatus.ok, window_end)]


# --- crash markers ---------------------------------------------------------------------------


def test_a_crash_after_the_results_were_stored_leaves_the_results_and_no_false_alert(
    engine: Engine, settings: Settings, dep: Deployment, clock: FixedClock
) -> None:
    def alerting_crashes(
        session: Session, *, deployment_id: int, window_end: datetime | None = None, **_: Any
    ) -> list[CheckResult]:
        assert window_end is not None
        for kind in scheduling.MARKED_KINDS:
            _store(session, deployment_id, kind, CheckStatus.ok, window_end)
        raise RuntimeError("the alerting exploded")  # e.g. an unexpected error in a rule

    s = Scheduler(engine=engine, settings=settings, clock=clock, check_runner=alerting_crashes)
    assert dep.id is not None
    s.execute("check", dep.id)
    assert _results(engine) == [
        (CheckKind.drift, CheckStatus.ok, "real drift"),
        (CheckKind.quality, CheckStatus.ok, "real quality"),
        (CheckKind.decay, CheckStatus.ok, "real decay"),
    ]
    with Session(engine) as session:
        assert session.exec(select(Alert)).all() == []


def test_each_result_replaces_its_marker_in_the_same_commit(
    engine: Engine, settings: Settings, dep: Deployment, clock: FixedClock
) -> None:
    seen: list[list[tuple[CheckKind, CheckStatus, str]]] = []

    def drift_then_crash(
        session: Session, *, deployment_id: int, window_end: datetime | None = None, **_: Any
    ) -> list[CheckResult]:
        assert window_end is not None
        _store(session, deployment_id, CheckKind.drift, CheckStatus.warn, window_end)
        seen.append(_results(engine))  # what another reader sees right after that commit
        raise RuntimeError("quality check exploded")

    s = Scheduler(engine=engine, settings=settings, clock=clock, check_runner=drift_then_crash)
    assert dep.id is not None
    s.execute("check", dep.id)
    marker = scheduling.DID_NOT_FINISH
    assert seen == [
        [
            (CheckKind.quality, CheckStatus.error, marker),
            (CheckKind.decay, CheckStatus.error, marker),
            (CheckKind.drift, CheckStatus.warn, "real drift"),
        ]
    ]
    crashed = "the checks crashed: RuntimeError: quality check exploded"
    assert _results(engine) == [
        (CheckKind.quality, CheckStatus.error, crashed),
        (CheckKind.decay, CheckStatus.error, crashed),
        (CheckKind.drift, CheckStatus.warn, "real drift"),
    ]
    with Session(engine) as session:
        [alert] = session.exec(select(Alert)).all()
    assert alert.rule == "check_error" and "quality check exploded" in alert.summary


def test_markers_an_abandoned_run_left_give_way_to_the_next_run_of_that_window(
    engine: Engine, settings: Settings, dep: Deployment, clock: FixedClock
) -> None:
    def abandoned(session: Session, **_: Any) -> list[CheckResult]:
        raise LostLeadership("gone")  # what a fenced commit raises

    assert dep.id is not None
    Scheduler(engine=engine, settings=settings, clock=clock, check_runner=abandoned).execute(
        "check", dep.id
    )
    assert [status for _, status, _ in _results(engine)] == [CheckStatus.error] * 3
    Scheduler(engine=engine, settings=settings, clock=clock, check_runner=_quality_ok).execute(
        "check", dep.id
    )
    assert _results(engine) == [(CheckKind.quality, CheckStatus.ok, "real quality")]


# --- losing the lock -------------------------------------------------------------------------


class SwitchLock:
    """A Leadership the test takes away (the real ones are tested below and in
    test_scheduler.py); it records what happened in order."""

    def __init__(self) -> None:
        self.held = False
        self.free = True
        self.events: list[str] = []

    def try_acquire(self) -> bool:
        if self.free and not self.held:
            self.held = True
            self.events.append("acquired")
        return self.held

    def alive(self) -> bool:
        return self.held

    def fence(self, conn: Connection) -> bool:
        return self.held

    def release(self) -> None:
        self.held = False

    def describe(self) -> str:
        return "switch lock"


def _blocking(
    entered: threading.Event, release: threading.Event, events: list[str], status: CheckStatus
) -> scheduling.CheckRunner:
    def run(
        session: Session,
        *,
        settings: Settings,
        deployment_id: int,
        window_end: datetime | None = None,
        clock: Clock = utcnow,
    ) -> list[CheckResult]:
        entered.set()
        assert release.wait(30)
        try:
            result = _store(
                session, deployment_id, CheckKind.quality, status, window_end or clock()
            )
            flows.alert_on_results(session, settings=settings, results=[result], clock=clock)
            return [result]
        finally:
            events.append("job ended")

    return run


def _run_now(s: Scheduler, job_id: str) -> None:
    assert s.aps is not None
    s.aps.modify_job(job_id, next_run_time=datetime.now(UTC))


def test_after_losing_the_lock_a_running_check_commits_nothing_and_is_waited_for(
    engine: Engine, settings: Settings, dep: Deployment, running: list[Scheduler]
) -> None:
    lock = SwitchLock()
    entered, release = threading.Event(), threading.Event()
    runner = _blocking(entered, release, lock.events, CheckStatus.fail)
    s = Scheduler(engine=engine, settings=settings, lock=lock, check_runner=runner)
    s.start()
    running.append(s)
    wait_until(lambda: s.is_leader, what="leadership")
    _run_now(s, f"check:{dep.id}")
    assert entered.wait(10)

    lock.held = False  # the lock is gone (connection dropped, another leader…)
    wait_until(lambda: s.losses == 1, what="the loss to be noticed")
    tries = s.tries
    with pytest.raises(TimeoutError):  # it would lead again at once if it did not wait
        wait_until(lambda: s.tries > tries, timeout=0.5, what="no new attempt")
    release.set()
    wait_until(lambda: lock.events.count("acquired") == 2, what="leading again after the job")
    assert lock.events == ["acquired", "job ended", "acquired"]
    wait_until(lambda: s.is_leader, what="the second term")
    # nothing of the old term's check was committed after the loss: no result, no alert
    assert [status for _, status, _ in _results(engine)] == [CheckStatus.error] * 3
    with Session(engine) as session:
        assert [a.rule for a in session.exec(select(Alert)).all() if a.rule == "quality"] == []


@pytest.mark.postgres
def test_on_postgres_a_leader_whose_lock_died_cannot_commit_while_the_new_one_runs_the_check(
    pg_engine: Engine, tmp_path: Path, clock: FixedClock, running: list[Scheduler]
) -> None:
    url = pg_engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path, database_url=url, scheduler=FAST)
    with Session(pg_engine, expire_on_commit=False) as session:
        environments.sync(session, settings)
        dep = live_deployment(session, at=clock() - timedelta(days=1))
    entered, release, events = threading.Event(), threading.Event(), []
    old = Scheduler(
        engine=pg_engine,
        settings=settings,
        clock=clock,
        check_runner=_blocking(entered, release, events, CheckStatus.fail),
        poll_seconds=3600,  # it will not notice the loss itself: the database must refuse
    )
    old.start()
    running.append(old)
    wait_until(lambda: old.is_leader, timeout=30, what="the first leader")
    _run_now(old, f"check:{dep.id}")
    assert entered.wait(30)

    assert isinstance(old.lock, PgAdvisoryLock) and old.lock.pid is not None
    with pg_engine.connect() as conn:  # its lock connection dies (network, server restart…)
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": old.lock.pid})
    new = Scheduler(
        engine=pg_engine,
        settings=settings,
        clock=clock,
        check_runner=_quality_ok,
        poll_seconds=0.05,
    )
    new.start()
    running.append(new)
    wait_until(lambda: new.is_leader, timeout=30, what="the takeover")
    _run_now(new, f"check:{dep.id}")
    wait_until(
        lambda: (CheckKind.quality, CheckStatus.ok, "real quality") in _results(pg_engine),
        timeout=30,
        what="the new leader's check",
    )

    release.set()  # the old leader's check goes on and tries to commit a failure
    wait_until(lambda: events == ["job ended"], timeout=30, what="the old check to end")
    assert _results(pg_engine) == [(CheckKind.quality, CheckStatus.ok, "real quality")]
    with Session(pg_engine) as session:
        assert [a for a in session.exec(select(Alert)).all() if a.rule == "quality"] == []
