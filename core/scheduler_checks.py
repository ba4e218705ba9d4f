"""A scheduled check with a safety net: crash markers that never sit beside real results.

Before a deployment's checks run, one `error` result per kind is stored, marked "did not
finish": a killed process leaves an error, not a gap. Each real result deletes the marker of
its kind in the flush that stores it, so the two commit (or roll back) together and a window
never holds both. When the check crashes, the markers still there (kinds with no result) keep
the exception and open one `check_error` alert; a crash after every result was stored (in the
alerting, say) touches no result and raises no false alert.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import event
from sqlmodel import Session, col, delete, select

from modeldeck.core import logs
from modeldeck.core.alerts import service as alerts
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.metrics import CHECKS
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.registry.models import Model
from modeldeck.core.rollouts.models import Deployment, DeploymentState
from modeldeck.core.scheduler_lock import LostLeadership

log = logs.get("modeldeck.scheduler")
MARKED_KINDS = (CheckKind.drift, CheckKind.quality, CheckKind.decay)
DID_NOT_FINISH = "the check did not finish (the scheduler stopped or crashed mid-check)"


class CheckRunner(Protocol):
    def __call__(
        self,
        session: Session,
        *,
        settings: Settings,
        deployment_id: int,
        window_end: datetime | None = None,
        clock: Clock = utcnow,
    ) -> Any: ...


def run_guarded(
    session: Session,
    *,
    settings: Settings,
    runner: CheckRunner,
    deployment_id: int,
    clock: Clock = utcnow,
) -> list[CheckResult] | None:
    """Run one active deployment's checks over the window ending now (None when it is not
    active): the real results, or the markers that recorded the crash."""
    deployment = session.get(Deployment, deployment_id)
    if deployment is None or deployment.state != DeploymentState.active:
        log.info("scheduler.check_skipped", deployment_id=deployment_id)
        return None
    model = session.get(Model, deployment.model_id)
    assert model is not None
    window = timedelta(minutes=settings.check_config(model.name).window_minutes)
    window_end = clock().replace(second=0, microsecond=0)
    markers = _mark_started(session, deployment_id, window_end - window, window_end, clock)
    event.listen(session, "before_flush", _replacing(deployment_id, markers))
    started = time.perf_counter()
    try:
        results: list[CheckResult] = (
            runner(
                session,
                settings=settings,
                deployment_id=deployment_id,
                window_end=window_end,
                clock=clock,
            )
            or []
        )
    except LostLeadership:
        session.rollback()
        raise
    except Exception as exc:
        session.rollback()
        log.exception("scheduler.check_crashed", deployment_id=deployment_id)
        return _keep_markers(session, settings, markers, exc, started, clock)
    # kinds the runner produced no result for (a custom runner, a kind switched off)
    session.execute(delete(CheckResult).where(col(CheckResult.id).in_([m.id for m in markers])))
    session.commit()
    return results


def _mark_started(
    session: Session, deployment_id: int, start: datetime, end: datetime, clock: Clock
) -> list[CheckResult]:
    # Markers an earlier run of this window left behind (its leader died or lost the lock)
    # give way to this run's: the window ends with this run's results or its markers.
    session.execute(
        delete(CheckResult).where(
            col(CheckResult.deployment_id) == deployment_id,
            col(CheckResult.window_end) == end,
            col(CheckResult.kind).in_(MARKED_KINDS),
            col(CheckResult.status) == CheckStatus.error,
            col(CheckResult.message) == DID_NOT_FINISH,
        )
    )
    markers = [
        CheckResult(
            deployment_id=deployment_id,
            kind=kind,
            window_start=start,
            window_end=end,
            status=CheckStatus.error,
            message=DID_NOT_FINISH,
            details={"error": DID_NOT_FINISH, "started_at": clock().isoformat()},
        )
        for kind in MARKED_KINDS
    ]
    session.add_all(markers)
    session.commit()
    return markers


def _replacing(deployment_id: int, markers: list[CheckResult]) -> Callable[..., None]:
    """A before_flush hook: a new result of this deployment deletes the marker of its kind in
    the same flush."""
    waiting = {m.kind: m for m in markers}

    def replace(session: Session, *_: Any) -> None:
        for row in list(session.new):
            if isinstance(row, CheckResult) and row.deployment_id == deployment_id:
                marker = waiting.pop(row.kind, None)
                if marker is not None:
                    session.delete(marker)

    return replace


def _keep_markers(
    session: Session,
    settings: Settings,
    markers: list[CheckResult],
    exc: Exception,
    started: float,
    clock: Clock,
) -> list[CheckResult]:
    left = session.exec(
        select(CheckResult)
        .where(col(CheckResult.id).in_([m.id for m in markers]))
        .order_by(col(CheckResult.id))
        .execution_options(populate_existing=True)
    ).all()
    if not left:
        log.error("scheduler.crashed_after_results", error=f"{type(exc).__name__}: {exc}")
        return []
    elapsed = int((time.perf_counter() - started) * 1000)
    for marker in left:
        marker.message = f"the checks crashed: {type(exc).__name__}: {exc}"[:1000]
        marker.details = {**marker.details, "error": marker.message}
        marker.duration_ms = elapsed
        session.add(marker)
        CHECKS.labels(str(marker.kind), "error").inc()
    session.commit()
    try:  # a crashed check is itself worth an alert (monitoring of the monitoring): one
        # alert, not one per kind, since a crash stops them all
        alerts.evaluate_check(session, settings=settings, result=left[0], clock=clock)
    except LostLeadership:
        session.rollback()
        raise
    except Exception:
        session.rollback()
        log.exception("scheduler.check_error_alert_failed")
    return list(left)
