"""The scheduler's hardware job: its window (catch-up after an outage) and its failures."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core import scheduler
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.hardware import jobs, service
from modeldeck.core.hardware.models import HardwareScrape
from tests.core.hardware.conftest import History
from tests.utils.servers import free_port


def test_the_job_is_registered_with_the_scheduler() -> None:
    assert "modeldeck.core.hardware.jobs" in scheduler.HOOK_MODULES
    job = scheduler.registered_jobs()["hardware.scrape"]
    assert job.func is jobs.scrape_job and job.seconds == jobs.SCRAPE_EVERY_SECONDS


def test_status_before_the_first_scrape_names_the_real_schedule(session: Session) -> None:
    """It used to say "hourly" while the job runs every 10 minutes."""
    job = scheduler.registered_jobs()["hardware.scrape"]
    message = service.status(session).message
    assert job.seconds == 600
    assert "no GPU metrics collected yet" in message
    assert "scrapes Prometheus every 10 minutes" in message and "hourly" not in message


def test_window_is_the_last_two_hours_or_back_to_the_last_good_scrape(
    session: Session, clock: FixedClock
) -> None:
    now = clock()
    assert jobs.scrape_window(session, now) == (now - timedelta(hours=2), now)
    session.add(
        HardwareScrape(
            started_at=now,
            window_start=now - timedelta(days=3, hours=2),
            window_end=now - timedelta(days=3),
            ok=True,
        )
    )
    session.commit()
    behind = now - timedelta(days=3, hours=1)  # a catch-up: one day per run, oldest first
    assert jobs.scrape_window(session, now) == (behind, behind + jobs.CATCH_UP_PER_RUN)
    session.add(
        HardwareScrape(
            started_at=now,
            window_start=now - timedelta(days=30),
            window_end=now - timedelta(days=20),
            ok=False,
        )
    )
    session.commit()  # failed runs do not move the catch-up point
    assert jobs.scrape_window(session, now)[0] == now - timedelta(days=3, hours=1)
    long_ago = now + timedelta(days=30)
    assert jobs.scrape_window(session, long_ago)[0] == long_ago - jobs.CATCH_UP_LIMIT


def test_job_skips_without_prometheus_and_records_failures_without_raising(
    engine: Engine, session: Session, settings: Settings, clock: FixedClock
) -> None:
    unset = settings.model_copy(
        update={"prometheus": settings.prometheus.model_copy(update={"url": None})}
    )
    assert jobs.scrape_job(scheduler.JobContext(engine, unset, clock)) is None
    assert session.exec(select(HardwareScrape)).first() is None  # nothing to report

    dead = settings.model_copy(
        update={
            "prometheus": settings.prometheus.model_copy(
                update={"url": f"http://127.0.0.1:{free_port()}"}
            )
        }
    )
    assert jobs.scrape_job(scheduler.JobContext(engine, dead, clock)) is None
    run = session.exec(select(HardwareScrape)).one()
    assert not run.ok and "unreachable" in run.error


def test_job_scrapes_the_recent_hours(
    engine: Engine,
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    result = jobs.scrape_job(scheduler.JobContext(engine, settings, clock))
    assert result is not None and result.rows > 0
    assert result.window_start == history.end - timedelta(hours=2)
