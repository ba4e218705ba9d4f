"""Label catch-up: the realised performance of past windows, once their labels arrived.

A decay check judges its window on the labels there are when it runs; where labels lag (a
churn label comes days later) it judges on the estimate. Every hour, for each active
deployment, the decay results of the last `label_catchup_days` not yet judged on labels are
re-checked once enough of their window is labelled (min_rows and min_label_coverage). The
stored result is updated in place: the realised metrics beside the estimate (the same
`details` shape the check writes, so the dashboard's decay queries read it as they are), the
status re-judged on them, and the first verdict kept under `details["estimate"]`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import structlog
from sqlmodel import Session, col, select

from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import CheckConfig, Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import decay
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.monitoring.runner import jsonable
from modeldeck.core.monitoring.store import Store
from modeldeck.core.monitoring.window import load
from modeldeck.core.rollouts import context as deployment_rows
from modeldeck.core.rollouts.models import Deployment, DeploymentState

MAX_WINDOWS = 96  # per deployment and run (a day of 15-minute checks); the rest next run
JUDGED = (CheckStatus.ok, CheckStatus.warn, CheckStatus.fail, CheckStatus.no_data)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
log = structlog.get_logger("modeldeck.monitoring")


def catch_up(
    session: Session,
    *,
    settings: Settings,
    clock: Clock = utcnow,
    deployment_id: int | None = None,
) -> list[CheckResult]:
    """Re-check past decay windows of every active deployment (or one) whose labels have
    arrived since; returns the results it updated (committed per deployment)."""
    query = (
        select(Deployment)
        .join(Environment, col(Environment.id) == Deployment.environment_id)
        .where(Deployment.state == DeploymentState.active, Environment.active == True)  # noqa: E712
        .order_by(col(Deployment.id))
    )
    if deployment_id is not None:
        query = query.where(Deployment.id == deployment_id)
    updated: list[CheckResult] = []
    for deployment in session.exec(query).all():
        assert deployment.id is not None
        try:
            updated += catch_up_deployment(
                session, settings=settings, deployment_id=deployment.id, clock=clock
            )
        except Exception:  # one deployment's unreadable store must not stop the others
            session.rollback()
            log.exception("label catch-up failed", deployment_id=deployment.id)
    return updated


def catch_up_deployment(
    session: Session, *, settings: Settings, deployment_id: int, clock: Clock = utcnow
) -> list[CheckResult]:
    deployment = session.get(Deployment, deployment_id)
    assert deployment is not None
    ctx = deployment_rows.load(session, deployment)
    model, version, env = ctx.model, ctx.version, ctx.env
    cfg = settings.check_config(model.name)
    now = clock()
    if cfg.label_catchup_days == 0:
        return []
    rows = session.exec(
        select(CheckResult)
        .where(
            CheckResult.deployment_id == deployment_id,
            CheckResult.kind == CheckKind.decay,
            col(CheckResult.status).in_(JUDGED),
            col(CheckResult.window_end) >= now - timedelta(days=cfg.label_catchup_days),
            col(CheckResult.window_end) <= now,
        )
        .order_by(col(CheckResult.window_end).desc(), col(CheckResult.id).desc())
    ).all()
    store = Store(settings.data_dir)
    since = (now - timedelta(days=cfg.label_catchup_days)).date()
    sweep(store, store.predictions_dir(model.name, version.version, env.name), since)
    pending = [r for r in rows if awaits_labels(r, cfg)]
    if not pending:
        return []
    start = min(as_utc(r.window_start) for r in pending)
    end = max(as_utc(r.window_end) for r in pending)
    labels = store.read_labels(model.name, start.date())
    if labels is None:
        return []
    counts = LabelCounts.read(
        store, store.predictions_dir(model.name, version.version, env.name), start, end, labels
    )
    due = [r for r in pending if counts.ready(r, cfg)][:MAX_WINDOWS]
    updated = []
    for result in due:
        window = load(
            session,
            settings=settings,
            deployment_id=deployment_id,
            window_start=result.window_start,
            window_end=result.window_end,
            reference_hash=result.reference_hash,
            clock=clock,
        )
        if window.load_error:
            log.warning(
                "label catch-up skipped a window", result_id=result.id, error=window.load_error
            )
            continue
        window.store_labels = labels
        outcome = decay.check(window)
        if outcome.details.get("source") != "realised":
            continue
        record(result, outcome.status, outcome.message, outcome.details, outcome.score, now)
        session.add(result)
        updated.append(result)
    session.commit()
    return updated


def sweep(store: Store, base: str, since: date) -> list[str]:
    """Remove what killed writers left in the recent partitions of `base` (see Store.sweep);
    a retried batch writes elsewhere, so nothing else would ever clean its old day."""
    removed: list[str] = []
    for day, directory in store.day_dirs(base):
        if day >= since:
            removed += store.sweep(directory)
    return removed


def awaits_labels(result: CheckResult, cfg: CheckConfig) -> bool:
    """A decay result that was evaluated (not a thin window or an unsupported task) but not
    on labels."""
    d = result.details or {}
    return "metrics" in d and d.get("source") != "realised" and result.rows >= cfg.min_rows


def record(
    result: CheckResult,
    status: CheckStatus,
    message: str,
    details: dict[str, Any],
    score: float | None,
    now: datetime,
) -> None:
    """Put the realised verdict on `result`, keeping its first verdict under `estimate`."""
    before = result.details or {}
    first = {k: before.get(k) for k in ("source", "metric", "value", "reference", "drop")}
    first |= {
        "status": str(result.status),
        "message": result.message,
        "labelled_rows": before.get("labelled_rows"),
        "label_coverage": before.get("label_coverage"),
        "checked_at": as_utc(result.created_at).isoformat(),
    }
    result.details = jsonable({**details, "estimate": first, "caught_up_at": now.isoformat()})
    result.status = status
    result.score = jsonable(score)
    result.message = f"{message} (labels arrived after the check)"[:2000]


class LabelCounts:
    """Predictions and labelled predictions of one deployment over a span, so each window's
    label coverage is two binary searches instead of a read of the window."""

    def __init__(self, stamps: np.ndarray, labelled: np.ndarray) -> None:
        self.stamps = stamps  # epoch microseconds, sorted
        self.cumulative = np.concatenate([[0], np.cumsum(labelled)])

    @classmethod
    def read(
        cls, store: Store, base: str, start: datetime, end: datetime, labels: pa.Table
    ) -> LabelCounts:
        parts = store.read_window(base, start, end, columns=[C.PREDICTION_ID, C.TIMESTAMP])
        if not parts:
            return cls(np.array([], np.int64), np.array([], bool))
        table = pa.concat_tables(parts, promote_options="permissive")
        stamps = pc.cast(table.column(C.TIMESTAMP), pa.int64()).to_numpy()
        known = labels.column(C.PREDICTION_ID).combine_chunks()
        labelled = pc.is_in(table.column(C.PREDICTION_ID), value_set=known).to_numpy()
        order = np.argsort(stamps, kind="stable")
        return cls(stamps[order], labelled[order])

    def window(self, start: datetime, end: datetime) -> tuple[int, int]:
        """(predictions, labelled predictions) in [start, end)."""
        lo, hi = np.searchsorted(self.stamps, [_micros(start), _micros(end)], side="left")
        return int(hi - lo), int(self.cumulative[hi] - self.cumulative[lo])

    def ready(self, result: CheckResult, cfg: CheckConfig) -> bool:
        """Enough of the window is labelled now to judge it on labels."""
        rows, labelled = self.window(as_utc(result.window_start), as_utc(result.window_end))
        return rows > 0 and labelled >= cfg.min_rows and labelled / rows >= cfg.min_label_coverage


def _micros(at: datetime) -> int:
    return (as_utc(at) - _EPOCH) // timedelta(microseconds=1)
