"""The hardware scrape as a scheduler job (core/scheduler.py imports this module at start).

Every 10 minutes it re-aggregates the last two hours (the current hour fills up, late samples
land) and, after an outage, everything since the last good scrape (up to a week), so a
scheduler or Prometheus that was down leaves no hole in the hourly history.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlmodel import Session, col, select

from modeldeck.core.clock import as_utc
from modeldeck.core.errors import ModeldeckError
from modeldeck.core.hardware import service
from modeldeck.core.hardware.models import HardwareScrape, ScrapeResult
from modeldeck.core.scheduler import JobContext, register_job

SCRAPE_EVERY_SECONDS = 600
RECENT = timedelta(hours=2)
CATCH_UP_LIMIT = timedelta(days=7)

log = structlog.get_logger("modeldeck.hardware")


def scrape_window(session: Session, now: datetime) -> tuple[datetime, datetime]:
    """The last two hours, or back to the end of the last good scrape (at most a week)."""
    last_end = session.exec(
        select(HardwareScrape.window_end)
        .where(HardwareScrape.ok == True)  # noqa: E712
        .order_by(col(HardwareScrape.window_end).desc())
    ).first()
    start = now - RECENT
    if last_end is not None:
        start = min(start, as_utc(last_end) - timedelta(hours=1))
    return max(start, now - CATCH_UP_LIMIT), now


def scrape_job(ctx: JobContext) -> ScrapeResult | None:
    """One scheduled scrape; failures are recorded by the service (status, alert) and logged."""
    if not ctx.settings.prometheus.url:
        log.debug("hardware.scrape_skipped", reason="prometheus.url is not configured")
        return None
    with Session(ctx.engine, expire_on_commit=False) as session:
        start, end = scrape_window(session, ctx.clock())
        try:
            return service.scrape(
                session, settings=ctx.settings, start=start, end=end, clock=ctx.clock
            )
        except ModeldeckError as exc:
            log.warning("hardware.scrape_job_failed", error=str(exc))
            return None


register_job("hardware.scrape", scrape_job, seconds=SCRAPE_EVERY_SECONDS)
