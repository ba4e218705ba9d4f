"""REST: /hardware — GPU usage and cost per model version from the stored hourly aggregates.

It never queries Prometheus: when the last scrape failed the answer is still 200, with the
stored numbers and `status.message` "metrics unavailable since …".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Query

from modeldeck.core.api.deps import ClockDep, EngineDep, SettingsDep, Viewer, read
from modeldeck.core.hardware import report, service
from modeldeck.core.hardware.models import HardwareReport, HardwareStatus

router = APIRouter(prefix="/hardware", tags=["hardware"])


@router.get("", response_model=HardwareReport)
async def hardware_report(
    engine: EngineDep,
    settings: SettingsDep,
    clock: ClockDep,
    _: Viewer,
    model: str | None = Query(None, max_length=64),
    version: str | None = Query(None, max_length=64),
    environment: str | None = Query(None, max_length=64),
    cluster: str | None = Query(None, max_length=64),
    start: datetime | None = Query(None, description="ISO time with zone; default end - days"),
    end: datetime | None = Query(None, description="ISO time with zone; default now"),
    days: int = Query(7, ge=1, le=800, description="range length when start is not given"),
) -> HardwareReport:
    """GPU-hours, utilisation (mean, p95), memory, power, cost and cost per 1k predictions per
    model version × environment × GPU model; the same version compared across GPU models;
    unattributed GPU time; and the last scrape's findings (why attribution failed, and how to
    fix it)."""
    end = end or clock()
    start = start or end - timedelta(days=days)
    return await read(
        engine,
        report.usage,
        settings=settings,
        start=start,
        end=end,
        model=model,
        version=version,
        environment=environment,
        cluster=cluster,
        clock=clock,
    )


@router.get("/status", response_model=HardwareStatus)
async def hardware_status(engine: EngineDep, clock: ClockDep, _: Viewer) -> HardwareStatus:
    """Whether GPU metrics are current ("metrics unavailable since …" after a failed scrape)."""
    return await read(engine, service.status, clock=clock)
