"""Performance decay of a window against the version's reference metrics.

Realised metrics come from the labels joined so far; where labels lag (fewer than min_rows
labelled, or less than min_label_coverage of the window: early labels are often a biased
subset), the verdict uses the label-free estimate (CBPE) and both are recorded, so the
estimate is shown beside the realised value once labels arrive (catchup.py re-checks past
windows). Segments repeat the metrics per value of CheckConfig.segment_column; the worst
segment with at least min_rows rows counts towards the status, so an average cannot hide it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modeldeck.core.config import CheckConfig
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import performance as perf
from modeldeck.core.monitoring.models import CheckStatus
from modeldeck.core.monitoring.performance import Task
from modeldeck.core.monitoring.profile import Profile
from modeldeck.core.monitoring.window import Outcome, Window, numpy_column, worst

MAX_SEGMENTS = 20


def baselines(
    version_metrics: dict[str, float], profile: Profile, task: Task
) -> dict[str, tuple[float, str]]:
    """Reference value and its source per metric: the version's registered metrics first,
    then what the reference data itself scores."""
    known = perf.CLASSIFICATION_METRICS if task.classification else perf.REGRESSION_METRICS
    out: dict[str, tuple[float, str]] = {}
    for name, value in (profile.metrics.get("realised") or {}).items():
        if name in known and value is not None:
            out[name] = (float(value), "reference data")
    for name, value in version_metrics.items():
        key = perf.canonical_metric(name)
        if key in known:
            out[key] = (float(value), "version metrics")
    return out


def check(window: Window) -> Outcome:
    profile = window.require_profile()
    table = window.require_table()
    cfg = window.cfg
    task = profile.task
    if task.type not in ("classification", "regression"):
        return Outcome(
            CheckStatus.no_data,
            f"decay needs a classification or regression model; {window.model.name} is {task.type}",
            {"task": task.type},
        )
    arrivals = label_arrivals(window)
    if table.num_rows < cfg.min_rows:
        return Outcome(
            CheckStatus.no_data,
            f"{table.num_rows} prediction(s) in the window, fewer than min_rows {cfg.min_rows}",
            {"rows": table.num_rows, "min_rows": cfg.min_rows, **arrivals},
        )
    labelled = window.labelled()
    refs = baselines(window.version.metrics, profile, task)
    overall = evaluate(table, labelled, task, refs, cfg, profile)
    details: dict[str, Any] = {
        **overall,
        "rows": table.num_rows,
        "threshold": cfg.performance_drop,
        "calibration": profile.metrics.get("calibration"),
        **arrivals,
    }
    statuses = [CheckStatus(overall["status"])]
    failures: list[dict[str, Any]] = []
    if cfg.segment_column:
        details["segment_column"] = cfg.segment_column
        details["segments"] = segments(table, labelled, task, refs, cfg, profile)
        failures = segment_failures(cfg.segment_column, details["segments"], cfg.min_rows)
        details["segment_failures"] = failures
        statuses += [CheckStatus(f["status"]) for f in failures]
    if overall["source"] is None:
        return Outcome(CheckStatus.no_data, overall["note"], details)
    message = _message(overall)
    if failures:
        message += f"; worst segment {_segment_text(failures[0])}"
    return Outcome(worst(statuses), message, details, overall.get("drop"))


def label_arrivals(window: Window) -> dict[str, Any]:
    """When this deployment's newest label arrived (whatever the window holds), for the
    no_labels alert; looked up as far back as twice its threshold."""
    hours = window.cfg.no_labels_hours or float(window.cfg.no_data_hours)
    lookback = max(2 * hours, 24.0)
    last = window.last_label_at(timedelta(hours=lookback))
    return {
        "last_label_at": last.isoformat() if last else None,
        "no_labels_hours": hours,
        "label_lookback_hours": lookback,
    }


def segment_failures(column: str, segs: dict[str, Any], min_rows: int) -> list[dict[str, Any]]:
    """Segments with at least `min_rows` rows that warn or fail, worst first (fail before
    warn, then by drop), each named `column=value` for the alert."""
    out = []
    for value, seg in segs.items():
        if not isinstance(seg, dict) or seg.get("rows", 0) < min_rows:
            continue
        if seg.get("source") is None or seg.get("status") not in ("warn", "fail"):
            continue
        out.append(
            {
                "segment": f"{column}={value}",
                "status": seg["status"],
                "source": seg["source"],
                "metric": seg.get("metric"),
                "value": seg.get("value"),
                "reference": seg.get("reference"),
                "drop": seg.get("drop"),
                "higher_is_better": seg.get("higher_is_better", True),
                "rows": seg["rows"],
                "labelled_rows": seg.get("labelled_rows"),
            }
        )
    out.sort(key=lambda f: (f["status"] != "fail", -(f["drop"] or 0.0), f["segment"]))
    return out


def evaluate(
    table: pa.Table,
    labelled: pa.Table,
    task: Task,
    refs: dict[str, tuple[float, str]],
    cfg: CheckConfig,
    profile: Profile,
) -> dict[str, Any]:
    """Realised and estimated metrics of one slice, judged against the baselines."""
    realised = _realised(labelled, task) if labelled.num_rows else {}
    estimated = _estimated(table, task) if task.classification else {}
    coverage = labelled.num_rows / table.num_rows if table.num_rows else 0.0
    enough = labelled.num_rows >= cfg.min_rows and coverage >= cfg.min_label_coverage
    if enough and realised:
        source, values = "realised", realised
    elif estimated:
        source, values = "estimated", estimated
    else:
        source, values = None, {}
    calibrated = (profile.metrics.get("calibration") or {}).get("calibrated")
    metrics: dict[str, Any] = {}
    statuses = []
    for name in sorted(set(realised) | set(estimated) | set(refs)):
        ref = refs.get(name)
        entry: dict[str, Any] = {
            "realised": realised.get(name),
            "estimated": estimated.get(name),
            "reference": ref[0] if ref else None,
            "reference_source": ref[1] if ref else None,
            "higher_is_better": perf.HIGHER_IS_BETTER.get(name, True),
        }
        value = values.get(name)
        if ref is not None and value is not None:
            drop = perf.relative_drop(name, value, ref[0])
            entry["drop"] = drop
            entry["status"] = _judge(
                drop, cfg, capped=source == "estimated" and calibrated is False
            ).value
            statuses.append(CheckStatus(entry["status"]))
        metrics[name] = entry
    out: dict[str, Any] = {
        "source": source,
        "metrics": metrics,
        "labelled_rows": labelled.num_rows,
        "label_coverage": coverage,
        "min_label_coverage": cfg.min_label_coverage,
        "status": worst(statuses).value,
    }
    if realised and not enough and labelled.num_rows >= cfg.min_rows:
        out["coverage_note"] = (
            f"labels cover {coverage:.0%} of the window, below min_label_coverage "
            f"{cfg.min_label_coverage:.0%} (early labels can be a biased subset): "
            + ("judged on the estimate" if source else "not judged yet")
        )
    judged = [(n, m) for n, m in metrics.items() if m.get("drop") is not None]
    if judged:
        name, entry = max(judged, key=lambda item: item[1]["drop"])
        out.update(
            metric=name,
            value=values[name],
            reference=entry["reference"],
            drop=entry["drop"],
            higher_is_better=entry["higher_is_better"],
        )
    elif source is not None:
        out["note"] = "no reference metrics to compare with (register the version's metrics)"
    if source is None:
        out["note"] = (
            f"{labelled.num_rows} labelled prediction(s) ({coverage:.0%} of the window; "
            f"needs min_rows {cfg.min_rows} and {cfg.min_label_coverage:.0%}), "
            "and no probabilities to estimate from"
        )
    if source == "estimated" and calibrated is False:
        out["estimate_note"] = (
            "the reference probabilities are not calibrated (ECE above "
            f"{perf.MAX_ECE}); estimates can only warn"
        )
    return out


def _judge(drop: float | None, cfg: CheckConfig, *, capped: bool) -> CheckStatus:
    if drop is None:
        return CheckStatus.ok
    if drop > cfg.performance_drop:
        return CheckStatus.warn if capped else CheckStatus.fail
    return CheckStatus.warn if drop > cfg.performance_drop / 2 else CheckStatus.ok


def _proba(table: pa.Table, task: Task) -> np.ndarray | None:
    names = [n for n in table.column_names if n.startswith(C.PROBA_PREFIX)]
    if not names:
        return None
    proba = {C.proba_class(n): numpy_column(table, n).astype(float) for n in names}
    return perf.probability_matrix(task, proba)


def _realised(labelled: pa.Table, task: Task) -> dict[str, float | None]:
    out = perf.realised(
        task, numpy_column(labelled, C.LABEL), numpy_column(labelled, C.PREDICTION), None
    )
    if task.classification:
        # AUC over the labelled rows that carry probabilities (all of them, usually).
        subset = _with_all_probas(labelled)
        matrix = _proba(subset, task)
        if matrix is not None and subset.num_rows:
            out["auc"] = perf.realised(
                task, numpy_column(subset, C.LABEL), numpy_column(subset, C.PREDICTION), matrix
            )["auc"]
    return out


def _estimated(table: pa.Table, task: Task) -> dict[str, float | None]:
    table = _with_all_probas(table)
    matrix = _proba(table, task)
    if matrix is None or table.num_rows == 0:
        return {}
    return perf.estimated(task, numpy_column(table, C.PREDICTION), matrix)


def _with_all_probas(table: pa.Table) -> pa.Table:
    """Rows that carry every probability column (estimates need them)."""
    names = [n for n in table.column_names if n.startswith(C.PROBA_PREFIX)]
    if not names:
        return table
    mask = pc.is_valid(table.column(names[0]))
    for name in names[1:]:
        mask = pc.and_(mask, pc.is_valid(table.column(name)))
    return table.filter(mask)


def segments(
    table: pa.Table,
    labelled: pa.Table,
    task: Task,
    refs: dict[str, tuple[float, str]],
    cfg: CheckConfig,
    profile: Profile,
) -> dict[str, Any]:
    """The same evaluation per value of the segment column (largest segments first)."""
    column = cfg.segment_column
    if column is None or column not in table.column_names:
        return {"error": f"segment column {column!r} is not a feature of this model"}
    values = table.column(column).cast(pa.string())
    counts = pc.value_counts(values)
    pairs = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True),
        key=lambda p: -p[1],
    )[:MAX_SEGMENTS]
    label_values = labelled.column(column).cast(pa.string())
    out: dict[str, Any] = {}
    for value, count in pairs:
        rows = table.filter(_is(values, value))
        labels = labelled.filter(_is(label_values, value))
        result = evaluate(rows, labels, task, refs, cfg, profile)
        out["(missing)" if value is None else str(value)] = {"rows": int(count), **result}
    return out


def _is(values: pa.ChunkedArray, value: str | None) -> pa.ChunkedArray:
    return pc.is_null(values) if value is None else pc.fill_null(pc.equal(values, value), False)


def _segment_text(failure: dict[str, Any]) -> str:
    if failure.get("metric") is None or failure.get("drop") is None:
        return f"{failure['segment']} ({failure['status']})"
    return (
        f"{failure['segment']}: {failure['source']} {failure['metric']} "
        f"{failure['value']:.4g} vs reference {failure['reference']:.4g} "
        f"({failure['drop']:.1%} worse, {failure['status']})"
    )


def _message(overall: dict[str, Any]) -> str:
    source = overall["source"]
    if overall.get("metric") is None:
        return f"{source} performance computed; {overall.get('note', '')}".strip()
    drop = overall["drop"]
    how = f"{drop:.1%} worse" if drop > 0 else f"{-drop:.1%} better" if drop < 0 else "equal"
    return (
        f"{source} {overall['metric']} {overall['value']:.4g} vs reference "
        f"{overall['reference']:.4g} ({how}); {overall['labelled_rows']} labelled row(s)"
    )
