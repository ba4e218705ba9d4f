"""Monitoring's scheduler jobs (core/scheduler.py imports this module at start).

`monitoring.label-catchup` runs hourly: labels arrive late (hours to days), so past decay
windows are re-checked once they are labelled (catchup.py), and a late realised verdict
fires or resolves its own `performance_drop` alert (flows.alert_on_late_labels).
"""

from __future__ import annotations

from typing import Any

import structlog

from modeldeck.core.scheduler import JobContext, register_job

CATCH_UP_EVERY_SECONDS = 3600

log = structlog.get_logger("modeldeck.monitoring")


def label_catch_up_job(ctx: JobContext) -> list[Any]:
    """One catch-up pass over every active deployment, then the alerts of what changed."""
    # Imported on use: the scheduler imports this module at start, the checks need numpy.
    from modeldeck.core.monitoring import catchup, flows

    with ctx.session() as session:
        updated = catchup.catch_up(session, settings=ctx.settings, clock=ctx.clock)
        if updated:
            log.info("monitoring.labels_caught_up", results=len(updated))
            flows.alert_on_late_labels(
                session, settings=ctx.settings, results=updated, clock=ctx.clock
            )
        return updated


register_job("monitoring.label-catchup", label_catch_up_job, seconds=CATCH_UP_EVERY_SECONDS)
