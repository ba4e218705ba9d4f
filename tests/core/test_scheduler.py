"""The scheduler: one leader (PostgreSQL advisory lock, SQLite file lock), no overlapping
checks, crash safety, the schedule following deployments, and alerts reaching Slack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobEvent
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from modeldeck.core import scheduler as scheduling
from modeldeck.core.alerts.models import Alert, AlertStatus
from modeldeck.core.cli.main import app as cli_app
from modeldeck.core.clock import Clock, FixedClock, as_utc, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.monitoring import flows
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.rollouts.models import Deployment
from modeldeck.core.scheduler import JobContext, Scheduler
from modeldeck.core.scheduler_lock import FileLock, advisory_key
from tests.conftest import make_settings
from tests.core.alerts.world import live_deployment
from tests.utils.fake_slack import FakeSlack
from tests.utils.servers import wait_until

FAST = {
    "leader_poll_seconds": 0.05,
    "drain_seconds": 0.1,
    "sync_seconds": 3600,
    "rollouts_seconds": 3600,
    "reconcile_seconds": 3600,
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, scheduler=FAST, model_checks={"churn": {"interval_minutes": 5}})


@pytest.fixture
def dep(session: Session, clock: FixedClock) -> Deployment:
    return live_deployment(session, at=clock() - timedelta(days=1))


@pytest.fixture
def running() -> Iterator[list[Scheduler]]:
    """Schedulers started by a test; all stopped afterwards."""
    started: list[Scheduler] = []
    yield started
    for s in started:
        s.stop(timeout=10)


def _start(running: list[Scheduler], **kwargs: Any) -> Scheduler:
    s = Scheduler(**kwargs)
    s.start()
    running.append(s)
    return s


def _results(engine: Engine) -> list[CheckResult]:
    with Session(engine) as session:
        return list(session.exec(select(CheckResult).order_by(CheckResult.id)).all())


def _quality_runner(status: CheckStatus) -> scheduling.CheckRunner:
    """A check runner that stores one quality result and runs the real alert flow on it."""

    def run(
        session: Session,
        *,
        settings: Settings,
        deployment_id: int,
        window_end: datetime | None = None,
        clock: Clock = utcnow,
    ) -> list[CheckResult]:
        end = window_end or clock()
        result = CheckResult(
            deployment_id=deployment_id,
            kind=CheckKind.quality,
            status=status,
            window_start=end - timedelta(hours=1),
            window_end=end,
            rows=100,
            details={"problems": ["country: 38% missing (max 5%)"]},
        )
        session.add(result)
        session.commit()
        flows.alert_on_results(session, settings=settings, results=[result], clock=clock)
        return [result]

    return run


def _run_now(s: Scheduler, job_id: str) -> None:
    assert s.aps is not None
    s.aps.modify_job(job_id, next_run_time=datetime.now(UTC))


# --- leadership ------------------------------------------------------------------------------


def _holder(engine: Engine) -> int | None:
    """pid of the backend holding the scheduler's advisory lock in this schema."""
    with engine.connect() as conn:
        key = advisory_key(conn)
        return conn.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
                " AND classid::text::bigint = ((CAST(:k AS bigint) >> 32) & 4294967295)"
                " AND objid::text::bigint = (CAST(:k AS bigint) & 4294967295)"
            ),
            {"k": key},
        ).scalar()


@pytest.mark.postgres
def test_second_scheduler_on_postgres_waits_and_takes_over_when_the_leader_dies(
    pg_engine: Engine, tmp_path: Path, running: list[Scheduler]
) -> None:
    url = pg_engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path, database_url=url, scheduler=FAST)
    with Session(pg_engine) as session:
        environments.sync(session, settings)
    config = tmp_path / "modeldeck.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": url,
                "log_format": "json",
                "scheduler": FAST,
                "clusters": [c.model_dump(mode="json") for c in settings.clusters],
                "environments": [e.model_dump(mode="json") for e in settings.environments],
            }
        )
    )
    log = (tmp_path / "leader.log").open("w")
    leader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from modeldeck.core.cli.main import main; main()",
            "--config",
            str(config),
            "scheduler",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MODELDECK_USER": "a"},
    )
    try:
        wait_until(
            lambda: _holder(pg_engine) is not None,
            timeout=60,
            what="the first scheduler to take the advisory lock",
        )
        first_pid = _holder(pg_engine)
        follower = _start(running, engine=pg_engine, settings=settings, poll_seconds=0.05)
        wait_until(lambda: follower.tries >= 3, what="the second scheduler to try")
        assert not follower.is_leader and _holder(pg_engine) == first_pid

        leader.send_signal(signal.SIGKILL)  # dies without releasing anything
        leader.wait(timeout=30)
        wait_until(lambda: follower.is_leader, timeout=30, what="the takeover")
        assert _holder(pg_engine) not in (None, first_pid)
        assert follower.aps is not None
        assert {"outbox-drain", "alerts-wake"} <= {j.id for j in follower.aps.get_jobs()}
        with pg_engine.connect() as conn:  # the schedule lives in the same database
            stored = conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar()
            assert stored is not None and stored >= 5
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait(timeout=30)
        log.close()
    assert "scheduler.leading" in (tmp_path / "leader.log").read_text()


def test_on_sqlite_a_file_lock_elects_one_scheduler(
    engine: Engine, settings: Settings, running: list[Scheduler]
) -> None:
    first = _start(running, engine=engine, settings=settings)
    wait_until(lambda: first.is_leader, what="the first scheduler to lead")
    second = _start(running, engine=engine, settings=settings)
    wait_until(lambda: second.tries >= 3, what="the second scheduler to try")
    assert not second.is_leader
    first.stop()
    wait_until(lambda: second.is_leader, what="the takeover")
    with pytest.raises(Exception, match="another scheduler is running"):
        Scheduler(engine=engine, settings=settings).run_once()


# --- checks ----------------------------------------------------------------------------------


def test_a_check_that_overruns_its_interval_is_not_started_twice(
    engine: Engine, settings: Settings, dep: Deployment, running: list[Scheduler]
) -> None:
    entered, release = threading.Event(), threading.Event()
    concurrent, peak = [0], [0]

    def slow(
        session: Session,
        *,
        settings: Settings,
        deployment_id: int,
        window_end: datetime | None = None,
        clock: Clock = utcnow,
    ) -> list[CheckResult]:
        concurrent[0] += 1
        peak[0] = max(peak[0], concurrent[0])
        entered.set()
        release.wait(30)
        concurrent[0] -= 1
        return []

    s = _start(running, engine=engine, settings=settings, check_runner=slow)
    wait_until(lambda: s.is_leader, what="leadership")
    assert s.aps is not None
    skipped: list[JobEvent] = []
    s.aps.add_listener(skipped.append, EVENT_JOB_MAX_INSTANCES)
    job_id = f"check:{dep.id}"
    _run_now(s, job_id)
    assert entered.wait(10)
    _run_now(s, job_id)  # due again while the first run is still going
    wait_until(lambda: skipped, what="APScheduler to refuse a second instance")
    assert skipped[0].job_id == job_id and peak[0] == 1
    release.set()
    wait_until(lambda: _results(engine) == [], what="the markers to be cleared")
    assert peak[0] == 1


def test_while_a_check_runs_its_crash_marker_is_in_the_database(
    engine: Engine, settings: Settings, dep: Deployment, clock: FixedClock
) -> None:
    """What a killed process leaves behind is exactly what is stored mid-check: error rows."""
    release, seen = threading.Event(), []

    def blocking(
        session: Session,
        *,
        settings: Settings,
        deployment_id: int,
        window_end: datetime | None = None,
        clock: Clock = utcnow,
    ) -> list[CheckResult]:
        seen.append(_results(engine))
        release.set()
        return _quality_runner(CheckStatus.ok)(
            session,
            settings=settings,
            deployment_id=deployment_id,
            window_end=window_end,
            clock=clock,
        )

    s = Scheduler(engine=engine, settings=settings, clock=clock, check_runner=blocking)
    assert dep.id is not None
    s.execute("check", dep.id)
    [mid_check] = seen
    assert [(r.kind, r.status) for r in mid_check] == [
        (CheckKind.drift, CheckStatus.error),
        (CheckKind.quality, CheckStatus.error),
        (CheckKind.decay, CheckStatus.error),
    ]
    assert all(r.details["error"] == scheduling.DID_NOT_FINISH for r in mid_check)
    assert [as_utc(r.window_end) for r in mid_check] == [datetime(2026, 11, 1, 12, tzinfo=UTC)] * 3
    after = _results(engine)
    assert [(r.kind, r.status) for r in after] == [(CheckKind.quality, CheckStatus.ok)]


def test_a_crash_mid_check_leaves_error_results_and_one_alert(
    engine: Engine, settings: Settings, dep: Deployment, clock: FixedClock
) -> None:
    def crashing(session: Session, **_: Any) -> list[CheckResult]:
        raise RuntimeError("evidently exploded")

    s = Scheduler(engine=engine, settings=settings, clock=clock, check_runner=crashing)
    assert dep.id is not None
    s.execute("check", dep.id)
    results = _results(engine)
    assert [r.status for r in results] == [CheckStatus.error] * 3
    assert all(
        r.details["error"] == "the checks crashed: RuntimeError: evidently exploded"
        for r in results
    )
    with Session(engine) as session:
        [alert] = session.exec(select(Alert)).all()
    assert alert.rule == "check_error" and alert.status == AlertStatus.firing
    assert "evidently exploded" in alert.summary


def test_checks_of_inactive_deployments_are_skipped(
    engine: Engine, settings: Settings, session: Session, clock: FixedClock
) -> None:
    old = live_deployment(session, version="1.0.0", at=clock() - timedelta(days=3))
    live_deployment(session, version="1.1.0", at=clock() - timedelta(days=1))
    s = Scheduler(
        engine=engine, settings=settings, clock=clock, check_runner=_quality_runner(CheckStatus.ok)
    )
    assert old.id is not None
    assert s.run_check(old.id) is None and _results(engine) == []
    assert s.run_check(424242) is None


# --- the schedule ----------------------------------------------------------------------------


def test_schedule_follows_deployments_and_survives_a_restart(
    engine: Engine,
    settings: Settings,
    session: Session,
    clock: FixedClock,
    running: list[Scheduler],
) -> None:
    fraud = live_deployment(session, model="fraud", at=clock())
    churn = live_deployment(session, model="churn", at=clock())
    s = _start(running, engine=engine, settings=settings)
    wait_until(lambda: s.is_leader, what="leadership")
    assert s.aps is not None
    jobs = {j.id: j for j in s.aps.get_jobs()}
    assert jobs[f"check:{fraud.id}"].trigger.interval == timedelta(minutes=15)
    assert jobs[f"check:{churn.id}"].trigger.interval == timedelta(minutes=5)
    kept = jobs[f"check:{churn.id}"].next_run_time

    newer = live_deployment(session, model="fraud", version="2.0.0", at=clock())
    assert s.sync_jobs() == {"added": 1, "removed": 1, "changed": 0}
    ids = {j.id for j in s.aps.get_jobs()}
    assert f"check:{newer.id}" in ids and f"check:{fraud.id}" not in ids

    s.stop()
    again = _start(running, engine=engine, settings=settings)
    wait_until(lambda: again.is_leader, what="leadership after a restart")
    assert again.aps is not None
    assert again.aps.get_job(f"check:{churn.id}").next_run_time == kept


def _ping(ctx: JobContext) -> None:
    _PINGS.append(ctx)


_PINGS: list[JobContext] = []


def test_registered_jobs_are_scheduled_and_run(engine: Engine, settings: Settings) -> None:
    scheduling.register_job("hardware.scrape-test", _ping, seconds=120)
    try:
        s = Scheduler(engine=engine, settings=settings)
        assert s.desired_jobs()["job:hardware.scrape-test"] == (
            120.0,
            ("registered", "hardware.scrape-test"),
        )
        report = s.run_once()
        assert report["checks"] == 0 and len(_PINGS) == 1
        assert _PINGS[0].engine is engine and _PINGS[0].settings is settings
    finally:
        scheduling.unregister_job("hardware.scrape-test")
    for name, seconds in (("Bad Name", 10.0), ("ok", 0.0)):
        with pytest.raises(ValueError):
            scheduling.register_job(name, _ping, seconds=seconds)
    assert "ok" not in scheduling.registered_jobs()


# --- end to end ------------------------------------------------------------------------------


def test_failing_check_reaches_slack_and_its_recovery_edits_the_message(
    tmp_path: Path, engine: Engine, dep: Deployment, running: list[Scheduler]
) -> None:
    with FakeSlack() as slack:
        settings = make_settings(
            tmp_path,
            scheduler=FAST,
            slack={"bot_token": slack.token, "api_url": slack.url, "alert_channel": "C0ALERTS"},
        )
        status = [CheckStatus.fail]

        def runner(session: Session, **kwargs: Any) -> list[CheckResult]:
            return _quality_runner(status[0])(session, **kwargs)

        s = _start(running, engine=engine, settings=settings, check_runner=runner)
        wait_until(lambda: s.is_leader, what="leadership")
        _run_now(s, f"check:{dep.id}")
        # (reconcile also runs at start and reports that the simulated cluster has no object
        # for this hand-made deployment: a real cluster_drift alert, not the one under test)
        post = wait_until(lambda: _post_about(slack, "quality"), what="the quality alert")
        assert post.args["channel"] == "C0ALERTS"
        assert "quality on fraud (production)" in post.args["text"]
        assert "country: 38% missing" in post.args["text"]

        status[0] = CheckStatus.ok
        _run_now(s, f"check:{dep.id}")
        [update] = slack.wait_for("chat.update")
        assert update.args["ts"] == post.response["ts"]
        assert update.args["text"].startswith("[resolved]")
        assert (
            len([c for c in slack.calls_to("chat.postMessage") if "quality" in c.args["text"]]) == 1
        )


def _post_about(slack: FakeSlack, rule: str) -> Any:
    posts = [
        c
        for c in slack.calls_to("chat.postMessage", ok_only=True)
        if f"{rule} on " in c.args["text"]
    ]
    return posts[0] if posts else None


def test_cli_scheduler_once(
    tmp_path: Path, engine: Engine, settings: Settings, dep: Deployment
) -> None:
    config = tmp_path / "modeldeck.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": settings.database_url,
                "clusters": [c.model_dump(mode="json") for c in settings.clusters],
                "environments": [e.model_dump(mode="json") for e in settings.environments],
            }
        )
    )
    result = CliRunner().invoke(cli_app, ["--config", str(config), "--json", "scheduler", "--once"])
    assert result.exit_code == 0, result.stderr
    assert '"checks": 1' in result.stdout
    assert len([r for r in _results(engine) if r.deployment_id == dep.id]) >= 1

    lock = FileLock(Path(f"{engine.url.database}.scheduler.lock"))
    assert lock.try_acquire()
    try:
        busy = CliRunner().invoke(cli_app, ["--config", str(config), "scheduler", "--once"])
        assert busy.exit_code == 1 and "another scheduler is running" in busy.stderr
    finally:
        lock.release()
