"""The hardware scrape as a scheduler job (core/scheduler.py imports this module at start).

Every 10 minutes it re-aggregates the last two hours (the current hour fills up, late samples
land) and, after an outage, everything since the last good scrape (up to a week), so a
scheduler or Prometheus that was down leaves no hole in the hourly history. A catch-up is
bounded per run (`CATCH_UP_PER_RUN`, scraped in chunks oldest first, each committed), so a
week-long outage recovers over a few runs instead of one run asking for a week of the fleet.
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

SCRAPE_EVERY_SECONDS = service.SCRAPE_EVERY_SECONDS  # the status message names it too
RECENT = timedelta(hours=2)
CATCH_UP_LIMIT = timedelta(days=7)
CATCH_UP_PER_RUN = timedelta(days=1)

log = structlog.get_logger("modeldeck.hardware")


def scrape_window(session: Session, now: datetime) -> tuple[datetime, datetime]:
    """The last two hours, or from the end of the last good scrape (at most a week back) for
    at most CATCH_UP_PER_RUN: the next runs continue from there."""
    last_end = session.exec(
        select(HardwareScrape.window_end)
        .where(HardwareScrape.ok == True)  # noqa: E712
        .order_by(col(HardwareScrape.window_end).desc())
    ).first()
    start = now - RECENT
    if last_end is not None:
        start = min(start, as_utc(last_end) - timedelta(hours=1))
    start = max(start, now - CATCH_UP_LIMIT)
    return start, min(now, start + CATCH_UP_PER_RUN)


def scrape_job(ctx: JobContext) -> ScrapeResult | None:
    """One scheduled scrape; failures are recorded by the service (status, alert) and logged."""
    if not ctx.settings.prometheus.url:
        log.debug("hardware.scrape_skipped", reason="prometheus.url is not configured")
        return None
    with ctx.session() as session:
        start, end = scrape_window(session, ctx.clock())
        try:
            return service.scrape(
                session, settings=ctx.settings, start=start, end=end, clock=ctx.clock
            )
        except ModeldeckError as exc:
            log.warning("hardware.scrape_job_failed", error=str(exc))
            return None
        except Exception:  # recorded as a failed run by the service; the next run retries
            log.exception("hardware.scrape_job_crashed")
            return None


register_job("hardware.scrape", scrape_job, seconds=SCRAPE_EVERY_SECONDS)
