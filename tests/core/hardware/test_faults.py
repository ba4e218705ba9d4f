"""Prometheus down, slow or misconfigured: clear errors, nothing crashes, stored data stays."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from modeldeck.core.alerts.models import Alert, AlertStatus
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import PrometheusConfig, Settings
from modeldeck.core.errors import BackendUnavailable, InvalidInput, NotFound
from modeldeck.core.hardware import report, service
from modeldeck.core.hardware.models import GpuUsageHourly, HardwareScrape
from modeldeck.core.hardware.prom import Prometheus
from tests.core.hardware.conftest import History
from tests.utils.prometheus import PrometheusServer


def with_prometheus(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(
        update={"prometheus": settings.prometheus.model_copy(update=changes)}
    )


def rows(session: Session) -> list[tuple[object, ...]]:
    return sorted(
        (r.hour, r.gpu_uuid, r.pod, r.version_id, r.gpu_seconds, r.util_mean)
        for r in session.exec(select(GpuUsageHourly)).all()
    )


@pytest.fixture
def dead_url(tmp_path: Path) -> str:
    """The address of a Prometheus that was running and is now stopped."""
    server = PrometheusServer(tmp_path / "dead")
    with server:
        pass
    return server.url


def test_prometheus_down_keeps_the_aggregates_and_says_since_when(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
    dead_url: str,
) -> None:
    service.scrape(session, settings=settings, start=history.t0, end=history.end, clock=clock)
    stored = rows(session)
    assert stored and service.status(session, clock=clock).available

    down = with_prometheus(settings, url=dead_url)
    failed_at = clock.advance(hours=1)
    with pytest.raises(BackendUnavailable) as err:
        service.scrape(
            session,
            settings=down,
            start=history.end - timedelta(hours=2),
            end=history.end,
            clock=clock,
        )
    assert f"Prometheus at {dead_url} is unreachable" in str(err.value)
    clock.advance(hours=1)
    with pytest.raises(BackendUnavailable):
        service.scrape(
            session,
            settings=down,
            start=history.end - timedelta(hours=2),
            end=history.end,
            clock=clock,
        )

    assert rows(session) == stored  # nothing deleted
    status = service.status(session, clock=clock)
    assert not status.available and status.unavailable_since == failed_at
    assert status.message.startswith(f"metrics unavailable since {failed_at:%Y-%m-%d %H:%M} UTC")
    assert "unreachable" in status.message and "stored data until" in status.message
    rep = report.usage(session, settings=down, start=history.t0, end=history.end, clock=clock)
    assert rep.versions and not rep.status.available  # the stored numbers still show
    alert = session.exec(select(Alert).where(Alert.rule == "gpu_metrics_unavailable")).one()
    assert alert.status == AlertStatus.firing and alert.count == 2

    clock.advance(hours=1)
    service.scrape(
        session,
        settings=settings,
        start=history.end - timedelta(hours=2),
        end=history.end,
        clock=clock,
    )
    assert service.status(session, clock=clock).available
    session.refresh(alert)
    assert alert.status == AlertStatus.resolved


def test_prometheus_that_hangs_times_out_quickly(
    session: Session, settings: Settings, tmp_path: Path, clock: FixedClock
) -> None:
    with PrometheusServer(tmp_path / "slow") as slow:
        slow.pause()
        try:
            hanging = with_prometheus(settings, url=slow.url, timeout_seconds=0.5)
            began = time.monotonic()
            with pytest.raises(BackendUnavailable) as err:
                service.scrape(
                    session,
                    settings=hanging,
                    start=clock() - timedelta(hours=1),
                    end=clock(),
                    clock=clock,
                )
            assert time.monotonic() - began < 5
            assert "did not answer within 0.5s" in str(err.value)
            assert "timeout_seconds" in (err.value.hint or "")
        finally:
            slow.resume()
    run = session.exec(select(HardwareScrape)).one()
    assert not run.ok and "did not answer" in run.error


def test_a_failure_recorded_last_counts_even_from_a_clock_behind(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
    dead_url: str,
) -> None:
    """The scheduler on one host scraped; minutes later the CLI on a host whose clock runs
    behind fails: the status is the failure, not the earlier success."""
    service.scrape(session, settings=settings, start=history.t0, end=history.end, clock=clock)
    behind = FixedClock(clock() - timedelta(minutes=3))
    with pytest.raises(BackendUnavailable):
        service.scrape(
            session,
            settings=with_prometheus(settings, url=dead_url),
            start=history.end - timedelta(hours=1),
            end=history.end,
            clock=behind,
        )
    status = service.status(session, clock=clock)
    assert not status.available and status.unavailable_since == behind()
    assert status.message.startswith("metrics unavailable since")


def test_unconfigured_prometheus_is_unavailable_with_a_hint(
    session: Session, settings: Settings, clock: FixedClock
) -> None:
    with pytest.raises(BackendUnavailable) as err:
        service.scrape(
            session,
            settings=with_prometheus(settings, url=None),
            start=clock() - timedelta(hours=1),
            end=clock(),
            clock=clock,
        )
    assert "not configured" in str(err.value) and "MODELDECK_PROMETHEUS__URL" in str(err.value)


@pytest.mark.parametrize(
    ("metrics", "labels", "expected"),
    [
        (
            {"gpu_util": "DCGM_FI_DEV_GPU_UTILIZATION"},
            {},
            [
                "prometheus.metrics.gpu_util",
                "'DCGM_FI_DEV_GPU_UTILIZATION'",
                "DCGM_FI_DEV_GPU_UTIL",
            ],
        ),
        (
            {"power": "DCGM_FI_DEV_POWER"},
            {},
            ["prometheus.metrics.power", "'DCGM_FI_DEV_POWER'", "DCGM_FI_DEV_POWER_USAGE"],
        ),
        (
            {"gpu_util": "DCGM FI DEV GPU UTIL"},
            {},
            ["prometheus.metrics.gpu_util", "not a valid Prometheus metric name"],
        ),
        (
            {"gpu_utl": "DCGM_FI_DEV_GPU_UTIL"},
            {},
            ["prometheus.metrics.gpu_utl: unknown key", "gpu_util"],
        ),
        ({}, {"pod": "pod-name"}, ["prometheus.labels.pod", "not a valid Prometheus label name"]),
    ],
)
def test_misconfigured_names_are_named_in_the_error(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
    metrics: dict[str, str],
    labels: dict[str, str],
    expected: list[str],
) -> None:
    last_hour = {"start": history.end - timedelta(hours=1), "end": history.end}
    service.scrape(session, settings=settings, clock=clock, **last_hour)
    stored = rows(session)
    assert stored
    clock.advance(minutes=10)
    wrong = with_prometheus(settings, metrics=metrics, labels=labels)
    with pytest.raises(InvalidInput) as err:
        service.scrape(
            session,
            settings=wrong,
            start=history.end - timedelta(hours=1),
            end=history.end,
            clock=clock,
        )
    for text in expected:
        assert text in str(err.value)
    assert rows(session) == stored  # the failed scrape changed nothing
    status = service.status(session, clock=clock)
    assert not status.available and expected[0] in status.message


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (datetime(2026, 11, 1), datetime(2026, 11, 2), "time zone"),
        (
            datetime(2026, 11, 2, tzinfo=UTC),
            datetime(2026, 11, 1, tzinfo=UTC),
            "empty scrape window",
        ),
        (datetime(2031, 1, 1, tzinfo=UTC), datetime(2031, 1, 2, tzinfo=UTC), "empty scrape window"),
    ],
)
def test_bad_scrape_windows_are_refused(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    start: datetime,
    end: datetime,
    message: str,
) -> None:
    with pytest.raises(InvalidInput, match=message):
        service.scrape(session, settings=settings, start=start, end=end, clock=clock)
    assert session.exec(select(HardwareScrape)).first() is None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"start": datetime(2026, 11, 1)}, InvalidInput, "time zone"),
        ({"end": datetime(2026, 10, 1, tzinfo=UTC)}, InvalidInput, "range is empty"),
        ({"model": "nope"}, NotFound, "nope"),
        ({"version": "1.0.0"}, InvalidInput, "needs the model"),
        ({"model": "fraud-detector", "version": "9.9.9"}, NotFound, "9.9.9"),
        ({"environment": "moon"}, NotFound, "moon"),
        ({"cluster": "gpu-h100"}, NotFound, "gpu-h100"),
    ],
)
def test_bad_report_filters_are_refused(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    clock: FixedClock,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    args: dict[str, Any] = {
        "start": datetime(2026, 10, 25, tzinfo=UTC),
        "end": datetime(2026, 11, 1, tzinfo=UTC),
    } | kwargs
    with pytest.raises(error, match=message):
        report.usage(session, settings=settings, clock=clock, **args)


def test_a_query_over_max_points_is_refused_before_it_is_sent(history: History) -> None:
    client = Prometheus(PrometheusConfig(url=history.server.url, max_points=10))
    with pytest.raises(InvalidInput, match=r"61 points per series \(limit prometheus"):
        client.query_range("DCGM_FI_DEV_GPU_UTIL", history.t0, history.t0 + timedelta(hours=1), 60)
    assert client.queries == 0


def test_prometheus_refusing_a_query_is_invalid_input(history: History) -> None:
    client = Prometheus(PrometheusConfig(url=history.server.url))
    with pytest.raises(InvalidInput, match="Prometheus refused the query"):
        client.query_range("sum(", history.t0, history.t0 + timedelta(hours=1), 60)


def test_failed_runs_are_listed_oldest_failure_first(
    session: Session, settings: Settings, clock: FixedClock, dead_url: str
) -> None:
    down = with_prometheus(settings, url=dead_url)
    first = clock()
    for _ in range(3):
        with pytest.raises(BackendUnavailable):
            service.scrape(
                session, settings=down, start=clock() - timedelta(hours=1), end=clock(), clock=clock
            )
        clock.advance(minutes=30)
    runs = session.exec(select(HardwareScrape).order_by(col(HardwareScrape.id))).all()
    assert [r.ok for r in runs] == [False, False, False]
    assert service.status(session, clock=clock).unavailable_since == first


def test_credentials_in_the_prometheus_url_never_reach_the_message(
    session: Session, settings: Settings, clock: FixedClock, dead_url: str
) -> None:
    """The failure is stored (status, alerts, Slack, dashboard): it must not carry a password."""
    secret_url = dead_url.replace("http://", "http://scraper:hunter2@") + "?token=abc123"
    with pytest.raises(BackendUnavailable) as err:
        service.scrape(
            session,
            settings=with_prometheus(settings, url=secret_url),
            start=clock() - timedelta(hours=1),
            end=clock(),
            clock=clock,
        )
    stored = session.exec(select(HardwareScrape)).all()
    texts = [str(err.value), *(run.error or "" for run in stored)]
    assert stored and all("hunter2" not in t and "abc123" not in t for t in texts)
    assert "Prometheus at http://127.0.0.1:" in str(err.value)
