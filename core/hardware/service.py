"""Hardware: scrape GPU metrics from Prometheus into hourly aggregates; report their status.

`scrape` is the scheduler's job (every 10 minutes, over the last two hours; any range for a
backfill). It works in chunks of whole hours (`CHUNK_POINTS` steps each, oldest first, each
committed with its own run), so no query asks for more than series × CHUNK_POINTS points and
an interrupted catch-up resumes where it stopped. It is idempotent: an (hour, cluster) for
which Prometheus returned data is replaced, so running it twice, or re-running a range after
fixing attribution, gives the same rows; hours Prometheus no longer has (retention) keep what
was stored. When Prometheus is down nothing is deleted: the last aggregates stay and `status`
says "metrics unavailable since …". One scrape runs at a time (`hardware.lock`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.errors import InvalidInput, ModeldeckError
from modeldeck.core.hardware import alerting
from modeldeck.core.hardware.aggregate import HourlyRow, aggregate
from modeldeck.core.hardware.attribution import Attributor
from modeldeck.core.hardware.collect import collect
from modeldeck.core.hardware.findings import data_findings
from modeldeck.core.hardware.lock import scrape_lock
from modeldeck.core.hardware.models import (
    Finding,
    GpuUsageHourly,
    HardwareScrape,
    HardwareStatus,
    ScrapeResult,
)
from modeldeck.core.hardware.prom import Prometheus, floor_time, names

log = structlog.get_logger("modeldeck.hardware")

CHUNK_POINTS = 360  # steps per chunk (6 h at 60 s), rounded down to whole hours, at least 1 h
# How often the scheduler runs the scrape (`jobs.py` registers it with this; `status` says it).
SCRAPE_EVERY_SECONDS = 600


def scrape(
    session: Session,
    *,
    settings: Settings,
    start: datetime,
    end: datetime,
    clock: Clock = utcnow,
    wait_seconds: float = 0.0,
) -> ScrapeResult:
    """Aggregate GPU metrics of [start, end) into `gpu_usage_hourly`, raise GPU alerts.

    The window is widened to whole hours (never past now) and scraped in chunks, oldest first.
    Raises BackendUnavailable when Prometheus is down or slow and InvalidInput for a
    misconfigured metric name (any other error too), after recording the failed run (the
    status the API and dashboard show); chunks before it stay stored. Conflict when another
    scrape holds the lock for longer than `wait_seconds`.
    """
    start, end = window(settings, start, end, clock)
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with scrape_lock(engine, wait_seconds=wait_seconds):
        results = [
            _scrape_chunk(session, settings, lo, hi, clock)
            for lo, hi in chunks(settings, start, end)
        ]
    return ScrapeResult(
        window_start=start,
        window_end=end,
        rows=sum(r.rows for r in results),
        series=max(r.series for r in results),
        queries=sum(r.queries for r in results),
        max_points_per_query=max(r.max_points_per_query for r in results),
        duration_ms=sum(r.duration_ms for r in results),
        chunks=len(results),
        findings=list({(f.kind, f.summary): f for r in results for f in r.findings}.values()),
    )


def chunks(settings: Settings, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) in whole-hour pieces of at most CHUNK_POINTS steps (the last may be short)."""
    span = timedelta(hours=max(1, settings.prometheus.step_seconds * CHUNK_POINTS // 3600))
    out, lo = [], start
    while lo < end:
        out.append((lo, min(lo + span, end)))
        lo += span
    return out


def _scrape_chunk(
    session: Session, settings: Settings, start: datetime, end: datetime, clock: Clock
) -> ScrapeResult:
    run = HardwareScrape(started_at=clock(), window_start=start, window_end=end)
    began = time.perf_counter()
    client = Prometheus(settings.prometheus)
    # Only a scrape that reaches the recent hours alerts: an old chunk of a catch-up or a
    # backfill must neither page about last month nor resolve what fires now.
    current = end > alerting.recent_since(clock())
    try:
        with client:
            data = collect(client, names(settings.prometheus), settings, start, end)
        attributor = Attributor(session, data.pod_labels)
        rows, diag = aggregate(data, attributor)
        _replace_hours(session, rows)
        findings = data_findings(settings, data, diag)
        firing = _firing(session, settings, end, rows, findings, attributor, clock)
        firing = firing if current else []
        findings += alerting.as_findings(firing)
        run.ok = True
        run.rows, run.series, run.queries = len(rows), len(data.series), client.queries
        run.findings = [f.model_dump(mode="json") for f in findings]
        run.finished_at = clock()
        run.duration_ms = int((time.perf_counter() - began) * 1000)
        session.add(run)
        session.commit()
    except Exception as exc:  # any failure is a failed run the status shows, then re-raised
        _record_failure(session, settings, run, exc, began, client.queries, clock)
        raise
    _alert(session, settings, firing, clock, current)
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


def _replace_hours(session: Session, rows: list[HourlyRow]) -> None:
    """The (hour, cluster) pairs Prometheus returned data for replace what was stored for them
    (idempotent re-scrapes); hours it returned nothing for keep their rows (retention)."""
    clusters: dict[datetime, set[str]] = defaultdict(set)
    for r in rows:
        clusters[r.hour].add(r.cluster)
    for hour, names_ in sorted(clusters.items()):
        session.exec(
            delete(GpuUsageHourly).where(
                col(GpuUsageHourly.hour) == hour, col(GpuUsageHourly.cluster).in_(names_)
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
    clock: Clock,
) -> list[alerting.Firing]:
    """Idle GPUs (from the stored hours), memory and heat (this scrape's recent hours),
    missing metrics."""

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
        + alerting.pressure(rows, settings, who, alerting.recent_since(clock()))
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
    exc: Exception,
    began: float,
    queries: int,
    clock: Clock,
) -> None:
    """Keep the stored aggregates, remember the failure (status), alert once (deduplicated).
    An unexpected error (a bug, the database) is recorded too, so the status says why instead
    of the catch-up silently re-reading the same window; its traceback goes to the log."""
    if isinstance(exc, ModeldeckError):
        error = str(exc)
        log.warning("hardware.scrape_failed", error=error)
    else:
        error = f"internal error in the GPU scrape ({type(exc).__name__}: {exc}); see the log"
        log.exception("hardware.scrape_crashed", error=error)
    try:
        session.rollback()
        run.ok = False
        run.error = error[:2000]
        run.queries = queries
        run.finished_at = clock()
        run.duration_ms = int((time.perf_counter() - began) * 1000)
        session.add(run)
        session.commit()
        since = status(session, clock=clock).unavailable_since or run.started_at
        alerting.scrape_failed(session, settings, error, as_utc(since), clock)
    except Exception as record_exc:  # recording must never hide the scrape's own error
        session.rollback()
        log.warning("hardware.record_failed", error=f"{type(record_exc).__name__}: {record_exc}")


def _alert(
    session: Session,
    settings: Settings,
    firing: list[alerting.Firing],
    clock: Clock,
    current: bool,
) -> None:
    try:
        if current:
            alerting.apply(session, settings, firing, clock)
        alerting.scrape_recovered(session, settings, clock)
    except ModeldeckError as exc:  # the aggregates are committed; alerts retry next run
        session.rollback()
        log.warning("hardware.alert_failed", error=str(exc))


def status(session: Session, *, clock: Clock = utcnow) -> HardwareStatus:
    """Are the stored numbers current? "metrics unavailable since …" after a failed scrape.

    Attempts are ordered as they were recorded (one scrape at a time, `hardware.lock`), not
    by their clocks: a process whose clock runs a little behind still has the last word."""
    last = session.exec(select(HardwareScrape).order_by(col(HardwareScrape.id).desc())).first()
    last_ok = session.exec(
        select(HardwareScrape)
        .where(HardwareScrape.ok == True)  # noqa: E712
        .order_by(col(HardwareScrape.id).desc())
    ).first()
    data_until = as_utc(last_ok.window_end) if last_ok else None
    if last is None:
        return HardwareStatus(
            available=False,
            message="no GPU metrics collected yet: the scheduler scrapes Prometheus every "
            f"{SCRAPE_EVERY_SECONDS // 60} minutes (or run `modeldeck gpu-scrape`)",
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
        failing = failing.where(col(HardwareScrape.id) > last_ok.id)
    since = as_utc(
        session.exec(failing.order_by(col(HardwareScrape.id))).first() or last.started_at
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


def last_findings(
    session: Session, *, model: str | None = None, environment: str | None = None
) -> list[Finding]:
    """What the last successful scrape found (the hardware page and `modeldeck gpu` show it).
    With a model or environment, findings about other ones are left out; findings about no
    model in particular (a cluster's metrics, attribution) always stay."""
    last_ok = session.exec(
        select(HardwareScrape)
        .where(HardwareScrape.ok == True)  # noqa: E712
        .order_by(col(HardwareScrape.id).desc())
    ).first()
    found = [Finding.model_validate(f) for f in last_ok.findings] if last_ok else []
    return [
        f
        for f in found
        if (model is None or f.model in (None, model))
        and (environment is None or f.environment in (None, environment))
    ]
