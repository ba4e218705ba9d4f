"""Hardware: scrape GPU metrics from Prometheus into hourly aggregates; report their status.

`scrape` is the scheduler's job (hourly, over the last hour or two; any range for a backfill).
It is idempotent: the hours it covers are replaced, so running it twice, or re-running a range
after fixing attribution, gives the same rows. When Prometheus is down nothing is deleted: the
last aggregates stay and `status` says "metrics unavailable since …".
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, insert
from sqlmodel import Session, col, select

from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.errors import InvalidInput, ModeldeckError
from modeldeck.core.hardware import alerting
from modeldeck.core.hardware.aggregate import HourlyRow, aggregate
from modeldeck.core.hardware.attribution import Attributor
from modeldeck.core.hardware.collect import collect
from modeldeck.core.hardware.findings import data_findings
from modeldeck.core.hardware.models import (
    Finding,
    GpuUsageHourly,
    HardwareScrape,
    HardwareStatus,
    ScrapeResult,
)
from modeldeck.core.hardware.prom import Prometheus, floor_time, names

log = structlog.get_logger("modeldeck.hardware")


def scrape(
    session: Session, *, settings: Settings, start: datetime, end: datetime, clock: Clock = utcnow
) -> ScrapeResult:
    """Aggregate GPU metrics of [start, end) into `gpu_usage_hourly`, raise GPU alerts.

    The window is widened to whole hours (never past now). Raises BackendUnavailable when
    Prometheus is down or slow and InvalidInput for a misconfigured metric name, after
    recording the failed run (the status the API and dashboard show).
    """
    start, end = window(settings, start, end, clock)
    run = HardwareScrape(started_at=clock(), window_start=start, window_end=end)
    began = time.perf_counter()
    client = Prometheus(settings.prometheus)
    try:
        with client:
            data = collect(client, names(settings.prometheus), settings, start, end)
        attributor = Attributor(session, data.pod_labels)
        rows, diag = aggregate(data, attributor)
    except ModeldeckError as exc:
        _record_failure(session, settings, run, exc, began, client.queries, clock)
        raise
    _replace_hours(session, start, end, rows)
    findings = data_findings(settings, data, diag)
    firing = _firing(session, settings, end, rows, findings, attributor)
    findings += alerting.as_findings(firing)
    run.ok = True
    run.rows, run.series, run.queries = len(rows), len(data.series), client.queries
    run.findings = [f.model_dump(mode="json") for f in findings]
    run.finished_at = clock()
    run.duration_ms = int((time.perf_counter() - began) * 1000)
    session.add(run)
    session.commit()
    _alert(session, settings, firing, clock)
    log.info(
        "hardware.scrape",
        start=start.isoformat(),
        end=end.isoformat(),
        rows=len(rows),
        series=len(data.series),
        queries=client.queries,
        ms=run.duration_ms,
    )
    return ScrapeResult(
        window_start=start,
        window_end=end,
        rows=len(rows),
        series=len(data.series),
        queries=client.queries,
        max_points_per_query=client.max_points_seen,
        duration_ms=run.duration_ms,
        findings=findings,
    )


def _replace_hours(session: Session, start: datetime, end: datetime, rows: list[HourlyRow]) -> None:
    """The scraped hours replace what was stored for them (idempotent re-scrapes)."""
    session.exec(
        delete(GpuUsageHourly).where(
            col(GpuUsageHourly.hour) >= start, col(GpuUsageHourly.hour) < _ceil_hour(end)
        )
    )
    if rows:
        session.execute(insert(GpuUsageHourly), [vars(r) for r in rows])


def _firing(
    session: Session,
    settings: Settings,
    end: datetime,
    rows: list[HourlyRow],
    findings: list[Finding],
    attributor: Attributor,
) -> list[alerting.Firing]:
    """Idle GPUs (from the stored hours), memory and heat (this scrape), missing metrics."""

    def who(model_id: Any, version_id: Any, env_id: Any) -> tuple[Any, Any, Any]:
        if model_id is None or version_id is None:
            return (None, None, None)
        return (
            attributor.model_names.get(model_id),
            attributor.version_names.get(version_id),
            attributor.env_names.get(env_id),
        )

    return (
        alerting.idle(session, settings, end, who)
        + alerting.pressure(rows, settings, who)
        + alerting.from_findings(findings)
    )


def window(
    settings: Settings, start: datetime, end: datetime, clock: Clock = utcnow
) -> tuple[datetime, datetime]:
    """Whole hours, capped at now (rounded down to the step): a scrape replaces whole hours."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start and end need a time zone (e.g. 2026-11-01T00:00:00Z)")
    step = settings.prometheus.step_seconds
    lo = floor_time(as_utc(start), 3600)
    hi = min(_ceil_hour(as_utc(end)), floor_time(clock(), step))
    if hi <= lo:
        raise InvalidInput(
            f"empty scrape window: {as_utc(start):%Y-%m-%d %H:%M} to "
            f"{as_utc(end):%Y-%m-%d %H:%M} UTC (start must be before end, "
            "and not in the future)"
        )
    return lo, hi


def _ceil_hour(value: datetime) -> datetime:
    floor = floor_time(value, 3600)
    return floor if floor == value else floor + timedelta(hours=1)


def _record_failure(
    session: Session,
    settings: Settings,
    run: HardwareScrape,
    exc: ModeldeckError,
    began: float,
    queries: int,
    clock: Clock,
) -> None:
    """Keep the stored aggregates, remember the failure (status), alert once (deduplicated)."""
    session.rollback()
    run.ok = False
    run.error = str(exc)[:2000]
    run.queries = queries
    run.finished_at = clock()
    run.duration_ms = int((time.perf_counter() - began) * 1000)
    session.add(run)
    session.commit()
    log.warning("hardware.scrape_failed", error=run.error)
    since = status(session, clock=clock).unavailable_since or run.started_at
    try:
        alerting.scrape_failed(session, settings, str(exc), as_utc(since), clock)
    except ModeldeckError as alert_exc:  # alerting must never hide the scrape's own error
        log.warning("hardware.alert_failed", error=str(alert_exc))


def _alert(
    session: Session, settings: Settings, firing: list[alerting.Firing], clock: Clock
) -> None:
    try:
        alerting.apply(session, settings, firing, clock)
        alerting.scrape_recovered(session, settings, clock)
    except ModeldeckError as exc:  # the aggregates are committed; alerts retry next run
        session.rollback()
        log.warning("hardware.alert_failed", error=str(exc))


def status(session: Session, *, clock: Clock = utcnow) -> HardwareStatus:
    """Are the stored numbers current? "metrics unavailable since …" after a failed scrape."""
    last = session.exec(
        select(HardwareScrape).order_by(
            col(HardwareScrape.started_at).desc(), col(HardwareScrape.id).desc()
        )
    ).first()
    last_ok = session.exec(
        select(HardwareScrape)
        .where(HardwareScrape.ok == True)  # noqa: E712
        .order_by(col(HardwareScrape.started_at).desc(), col(HardwareScrape.id).desc())
    ).first()
    data_until = as_utc(last_ok.window_end) if last_ok else None
    if last is None:
        return HardwareStatus(
            available=False,
            message="no GPU metrics collected yet: the "
            "scheduler scrapes Prometheus hourly (or run `modeldeck "
            "gpu-scrape`)",
        )
    if last.ok:
        return HardwareStatus(
            available=True,
            last_success_at=as_utc(last.started_at),
            data_until=data_until,
            message=f"GPU metrics up to date (data until {data_until:%Y-%m-%d %H:%M} UTC)",
        )
    failing = select(HardwareScrape.started_at).where(HardwareScrape.ok == False)  # noqa: E712
    if last_ok is not None:
        failing = failing.where(col(HardwareScrape.started_at) > last_ok.started_at)
    since = as_utc(
        session.exec(failing.order_by(col(HardwareScrape.started_at))).first() or last.started_at
    )
    stored = f"; showing stored data until {data_until:%Y-%m-%d %H:%M} UTC" if data_until else ""
    return HardwareStatus(
        available=False,
        unavailable_since=since,
        last_error=last.error,
        data_until=data_until,
        last_success_at=as_utc(last_ok.started_at) if last_ok else None,
        message=f"metrics unavailable since {since:%Y-%m-%d %H:%M} UTC: {last.error}{stored}",
    )


def last_findings(session: Session) -> list[Finding]:
    """What the last successful scrape found (the hardware page shows it)."""
    last_ok = session.exec(
        select(HardwareScrape)
        .where(HardwareScrape.ok == True)  # noqa: E712
        .order_by(col(HardwareScrape.started_at).desc(), col(HardwareScrape.id).desc())
    ).first()
    return [Finding.model_validate(f) for f in last_ok.findings] if last_ok else []
