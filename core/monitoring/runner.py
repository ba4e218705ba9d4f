"""Run checks over a deployment's window and store each as a CheckResult.

A check never disappears: a crash becomes a stored result with status=error and the message,
a thin window becomes status=no_data. Running a check never alerts (alerts/ reads results).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import numpy as np
import structlog
from sqlmodel import Session

from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.errors import InvalidInput
from modeldeck.core.metrics import CHECKS
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import decay, drift, quality, reference, segments
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.monitoring.profile import DRIFT_KINDS
from modeldeck.core.monitoring.window import Outcome, Window, load, worst

DATA_KINDS = (CheckKind.drift, CheckKind.quality, CheckKind.decay)
Progress = Callable[[CheckKind, CheckResult | None], None]
log = structlog.get_logger("modeldeck.monitoring")


def drift_check(window: Window) -> Outcome:
    """Per-column drift with evidently's default tests; dataset drift at cfg.drift_share."""
    profile = window.require_profile()
    table = window.require_table()
    cfg = window.cfg
    if table.num_rows < cfg.min_rows:
        return Outcome(
            CheckStatus.no_data,
            f"{table.num_rows} prediction(s) in the window, fewer than min_rows {cfg.min_rows}",
            {"rows": table.num_rows, "min_rows": cfg.min_rows},
        )
    testable = {
        n: (s.kind, s.n_unique) for n, s in profile.features.items() if s.kind in DRIFT_KINDS
    }
    skipped = sorted(set(profile.features) - set(testable))
    if not testable:
        raise ValueError(
            "no feature of a kind evidently tests for drift "
            f"(numerical, categorical, text); features: {skipped}"
        )
    names = list(testable)
    with_prediction = profile.prediction is not None and C.PREDICTION in table.column_names
    wanted = names + ([C.PREDICTION] if with_prediction else [])
    segment = cfg.segment_column
    if segment in profile.features and segment not in wanted:
        wanted.append(segment)
    ref = reference.load_frame(window.settings, profile, wanted)
    cur = window.frame(wanted)
    result = drift.table_drift(ref, cur, testable, drift_share=cfg.drift_share)
    details: dict[str, Any] = {
        "columns": {c.column: c.to_dict() for c in result.columns},
        "share_drifted": result.share,
        "drifted_count": result.drifted,
        "columns_tested": sum(1 for c in result.columns if c.drifted is not None),
        "dataset_drift": result.dataset_drift,
        "drift_share": cfg.drift_share,
        "method": "evidently DataDriftPreset defaults (per-column test and threshold)",
        "reference_rows": profile.rows,
        "skipped_columns": skipped,
    }
    prediction_drifted = False
    if with_prediction and profile.prediction is not None:
        spec = profile.prediction
        pred = drift.column_drift(
            C.PREDICTION, spec.kind, ref[C.PREDICTION], cur[C.PREDICTION], spec.n_unique
        )
        details["prediction"] = pred.to_dict()
        prediction_drifted = bool(pred.drifted)
    drifted = sorted((c for c in result.columns if c.drifted), key=lambda c: c.column)
    status = (
        CheckStatus.fail
        if result.dataset_drift
        else CheckStatus.warn
        if drifted or prediction_drifted
        else CheckStatus.ok
    )
    message = (
        f"{result.drifted} of {details['columns_tested']} columns drifted "
        f"({result.share:.0%}; dataset drift at {cfg.drift_share:.0%})"
    )
    if drifted:
        message += ": " + ", ".join(c.column for c in drifted[:5])
    if prediction_drifted:
        message += "; the prediction drifted"
    if segment:  # the worst segment counts too, so an average cannot hide it
        if problem := segments.unusable(segment, profile.features):
            details.update(problem)
        else:
            output = profile.prediction.kind if with_prediction and profile.prediction else None
            details.update(segments.drift_segments(segment, ref, cur, testable, output, cfg))
            failed = details["segment_failures"]
            status = worst([status] + [CheckStatus(f["status"]) for f in failed])
            message += segments.message(failed)
    return Outcome(status, message, details, result.share)


CHECKERS: dict[CheckKind, Callable[[Window], Outcome]] = {
    CheckKind.drift: drift_check,
    CheckKind.quality: quality.check,
    CheckKind.decay: decay.check,
}


def run_check(
    session: Session,
    *,
    settings: Settings,
    deployment_id: int,
    kind: CheckKind,
    window_end: datetime | None = None,
    clock: Clock = utcnow,
) -> CheckResult:
    """Run one check over the deployment's window ending at `window_end` (default now)."""
    if kind not in CHECKERS:
        raise InvalidInput(
            f"{kind} checks are not run by monitoring",
            hint=f"one of {', '.join(k.value for k in CHECKERS)}",
        )
    window = load(
        session, settings=settings, deployment_id=deployment_id, window_end=window_end, clock=clock
    )
    return execute(session, window, kind, clock)


def run_checks(
    session: Session,
    *,
    settings: Settings,
    deployment_id: int,
    window_end: datetime | None = None,
    clock: Clock = utcnow,
    kinds: tuple[CheckKind, ...] = DATA_KINDS,
    progress: Progress | None = None,
) -> list[CheckResult]:
    """Drift, quality and decay over one window read once; `progress` is told before and
    after each check (the CLI's progress bar)."""
    for kind in kinds:
        if kind not in CHECKERS:
            raise InvalidInput(f"{kind} checks are not run by monitoring")
    window = load(
        session, settings=settings, deployment_id=deployment_id, window_end=window_end, clock=clock
    )
    results = []
    for kind in kinds:
        if progress:
            progress(kind, None)
        results.append(execute(session, window, kind, clock))
        if progress:
            progress(kind, results[-1])
    return results


def execute(session: Session, window: Window, kind: CheckKind, clock: Clock) -> CheckResult:
    started = time.perf_counter()
    try:
        if window.load_error:
            raise _LoadFailed(window.load_error)
        outcome = CHECKERS[kind](window)
    except Exception as exc:  # a crash is a result, never a gap
        text = str(exc) if isinstance(exc, _LoadFailed) else f"{type(exc).__name__}: {exc}"
        log.warning(
            "check failed",
            kind=str(kind),
            deployment_id=window.deployment.id,
            error=text,
            exc_info=not isinstance(exc, _LoadFailed),
        )
        outcome = Outcome(CheckStatus.error, text, {"error": text})
    elapsed = int((time.perf_counter() - started) * 1000)
    assert window.deployment.id is not None
    result = CheckResult(
        deployment_id=window.deployment.id,
        kind=kind,
        window_start=window.start,
        window_end=window.end,
        status=outcome.status,
        score=_finite(outcome.score),
        details=jsonable(outcome.details),
        reference_hash=window.profile.hash if window.profile else None,
        rows=window.rows,
        duration_ms=elapsed,
        message=outcome.message[:2000],
        created_at=clock(),
    )
    session.add(result)
    session.commit()
    CHECKS.labels(kind.value, outcome.status.value).inc()
    return result


class _LoadFailed(Exception):
    pass


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def jsonable(value: Any) -> Any:
    """JSON-safe details: numpy scalars as Python, NaN/inf as null (PostgreSQL refuses NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _finite(float(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
