"""Alert rules over check results: pure functions from a CheckResult to findings.

A finding says "this rule fires" (with an explanation a person can act on: metric, value,
threshold, window, top drifting features) or "this rule is healthy again" (resolve). The
service turns findings into alerts; keeping the rules pure makes them easy to test and read.

The check details are read tolerantly (`columns` or `features`, `drifted` or
`drift_detected`…) so the rules do not break when a check adds or renames a field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modeldeck.core.alerts.models import Severity
from modeldeck.core.clock import as_utc
from modeldeck.core.config import CheckConfig
from modeldeck.core.monitoring import readings
from modeldeck.core.monitoring.models import CheckResult, CheckStatus

# Rule names (stable: they are part of the fingerprint and of Slack messages).
DRIFT = "drift"
QUALITY = "quality"
DECAY = "performance_drop"
NO_DATA = "no_data"
NO_LABELS = "no_labels"
CHECK_ERROR = "check_error"
HARDWARE = "hardware"
CHECK_RULES = (DRIFT, QUALITY, DECAY, NO_DATA, NO_LABELS, CHECK_ERROR, HARDWARE)

# Statistical tests whose score is a p-value: smaller means more drift.
P_VALUE_TESTS = {
    "ks",
    "chisquare",
    "z",
    "fisher_exact",
    "g_test",
    "t_test",
    "mannw",
    "cramer_von_mises",
    "anderson",
    "epps_singleton",
    "empirical_mmd",
}
TOP_FEATURES = 5


@dataclass(frozen=True)
class Finding:
    """One rule's verdict on one check result."""

    rule: str
    firing: bool | None  # None: no opinion (no data, or the check errored): change nothing
    severity: Severity = Severity.warning
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    failed_check: bool = False  # a real check failure: trust levels pause/rollback act on it


def window_text(start: datetime, end: datetime) -> str:
    start, end = as_utc(start), as_utc(end)
    fmt = "%H:%M" if start.date() == end.date() else "%Y-%m-%d %H:%M"
    return f"{start:%Y-%m-%d %H:%M}–{end.strftime(fmt)} UTC"


def base_details(
    result: CheckResult, *, metric: str, value: Any, threshold: Any, **explanation: Any
) -> dict[str, Any]:
    """The explanation a person reads first (metric, value, threshold, window, rule-specific
    evidence), then the references a program follows (result id, window bounds)."""
    return {
        "metric": metric,
        "value": value,
        "threshold": threshold,
        "window": window_text(result.window_start, result.window_end),
        **explanation,
        "rows": result.rows,
        "check": str(result.kind),
        "check_status": str(result.status),
        "check_result_id": result.id,
        "window_start": as_utc(result.window_start).isoformat(),
        "window_end": as_utc(result.window_end).isoformat(),
    }


def _silent(result: CheckResult) -> bool:
    return result.status in (CheckStatus.error, CheckStatus.no_data)


def top_drifting(
    details: dict[str, Any], limit: int = TOP_FEATURES, key: str | None = None
) -> list[dict[str, Any]]:
    """The drifted columns, strongest first: p-value tests rank by threshold/score, distance
    tests by score/threshold, so both read as "how many times past the line". `key` reads a
    list of drifted columns instead (a segment's `drifted_columns`)."""
    ranked = []
    found = readings.column_map({"columns": details.get(key)} if key else details)
    for name, col in found.items():
        drifted = readings.first(col, "drifted", "drift_detected") or key is not None
        if not drifted:
            continue
        score = readings.number(readings.first(col, "score", "drift_score", "p_value"))
        threshold = readings.number(readings.first(col, "threshold", "stattest_threshold"))
        method = readings.first(col, "method", "stattest", "stattest_name")
        strength = 1.0
        if score is not None and threshold:
            if str(method).split(" ")[0].lower() in P_VALUE_TESTS:
                strength = threshold / score if score > 0 else float("inf")
            else:
                strength = score / threshold
        ranked.append(
            (
                strength,
                name,
                {"column": name, "score": score, "threshold": threshold, "method": method},
            )
        )
    ranked.sort(key=lambda item: (-item[0], item[1]))
    return [entry for _, _, entry in ranked[:limit]]


def _feature_text(entry: dict[str, Any]) -> str:
    if entry["score"] is None:
        return str(entry["column"])
    method = f"{entry['method']} " if entry["method"] else ""
    return f"{entry['column']} ({method}{entry['score']:.3g})"


def failing_segments(details: dict[str, Any]) -> list[dict[str, Any]]:
    """The check's segments that fail (`segment_failures`, worst first), as drift, quality and
    decay write them: each names itself `column=value`."""
    return [
        f
        for f in details.get("segment_failures") or []
        if isinstance(f, dict) and f.get("status") == "fail" and f.get("segment")
    ]


def _segments_text(names: list[str]) -> str:
    return f"; failing segments: {', '.join(names[:TOP_FEATURES])}" if names else ""


def drift(result: CheckResult, cfg: CheckConfig, subject: str) -> Finding:
    """Fires when the share of drifted columns reaches CheckConfig.drift_share (or the check
    itself failed), or when a segment drifts though the whole window does not: the alert
    then names the segment (e.g. "region=eu") and its drifted columns."""
    if _silent(result):
        return Finding(DRIFT, None)
    share = readings.number(
        readings.first(result.details, "share_drifted", "drift_share", "share_of_drifted_columns")
    )
    if share is None:
        share = readings.number(result.score)
    failing = failing_segments(result.details)
    overall = bool(result.details.get("dataset_drift")) or (
        share is not None and share >= cfg.drift_share
    )
    segment = failing[0] if failing and not overall else None
    firing = result.status == CheckStatus.fail or overall
    if not firing:
        return Finding(DRIFT, False)
    top = top_drifting(segment or result.details, key="drifted_columns" if segment else None)
    names = ", ".join(_feature_text(t) for t in top)
    where = f" in segment {segment['segment']}" if segment else ""
    value = readings.number(segment.get("share_drifted")) if segment else share
    details = base_details(
        result,
        metric="share of drifted columns" + where,
        value=value,
        threshold=cfg.drift_share,
        top_features=[_feature_text(t) for t in top],
        drifted_features={t["column"]: t for t in top},
        segments=[str(f["segment"]) for f in failing],
    )
    share_txt = f"{value:.0%}" if value is not None else "a dataset-level"
    summary = (
        f"Data drift in {subject}{where}: {share_txt} of columns drifted (threshold "
        f"{cfg.drift_share:.0%}) over {window_text(result.window_start, result.window_end)}"
    )
    if names:
        summary += f"; top: {names}"
    if segment is not None and share is not None:
        summary += f"; whole window {share:.0%}"
    summary += _segments_text([str(f["segment"]) for f in failing if f is not segment])
    return Finding(DRIFT, True, Severity.warning, summary, details, failed_check=True)


def quality(result: CheckResult, cfg: CheckConfig, subject: str) -> Finding:
    """Fires when the data-quality check failed (missing values, types, ranges, categories)."""
    if _silent(result):
        return Finding(QUALITY, None)
    if result.status != CheckStatus.fail:
        return Finding(QUALITY, False)
    problems = readings.first(result.details, "problems", "failures", "issues") or []
    if not isinstance(problems, list):
        problems = [problems]
    if not problems:
        problems = [
            f"{name}: {col.get('problem') or col.get('status')}"
            for name, col in readings.column_map(result.details).items()
            if col.get("status") == "fail" or col.get("failed") or col.get("problem")
        ]
    failing = failing_segments(result.details)
    segment = failing[0] if failing and not problems else None  # the average passes
    if segment is not None:
        problems = segment.get("problems") or [segment.get("finding") or "failed"]
    texts = [
        p if isinstance(p, str) else str(readings.first(p, "message", "text") or p)
        for p in problems
    ][:TOP_FEATURES]
    where = f" in segment {segment['segment']}" if segment else ""
    details = base_details(
        result,
        metric="data quality problems" + where,
        value=len(problems),
        threshold=f"max missing share {cfg.max_missing_share:.0%}",
        problems=texts,
        segments=[str(f["segment"]) for f in failing],
    )
    summary = (
        f"Data quality failed in {subject}{where} over "
        f"{window_text(result.window_start, result.window_end)}"
    )
    if texts:
        summary += ": " + "; ".join(texts)
    summary += _segments_text([str(f["segment"]) for f in failing if f is not segment])
    return Finding(QUALITY, True, Severity.critical, summary, details, failed_check=True)


def performance_drop(result: CheckResult, cfg: CheckConfig, subject: str) -> Finding:
    """Fires when the metric falls below the version's reference by more than
    CheckConfig.performance_drop (relative; lower-is-better metrics such as mae rise instead),
    or when a segment fails (`segment_failures`) though the average passes: the alert names
    the segment (e.g. "region=eu").

    The decay check's own `drop` is used when present; an estimate the check could only warn
    about (uncalibrated probabilities: `estimate_note`) does not fire."""
    if _silent(result):
        return Finding(DECAY, None)
    d = result.details
    metric, value, reference, higher_is_better, drop = _measure(d, result.score)
    capped = bool(d.get("estimate_note")) and result.status != CheckStatus.fail
    if drop is not None:
        firing = drop > cfg.performance_drop and not capped
    else:
        firing = result.status == CheckStatus.fail
    failing = [
        f
        for f in d.get("segment_failures") or []
        if isinstance(f, dict) and f.get("status") == "fail"
    ]
    segment: dict[str, Any] | None = None
    if not firing and failing:  # the average passes, its worst segment does not
        segment = failing[0]
        metric, value, reference, higher_is_better, drop = _measure(segment, None)
        firing = True
    if not firing:
        return Finding(DECAY, False)
    source = (segment or d).get("source")
    label = f"{metric} ({source})" if source in ("realised", "estimated") else metric
    if segment is not None:
        label += f" in segment {segment.get('segment')}"
    names = [str(f.get("segment")) for f in failing]
    details = base_details(
        result,
        metric=label,
        value=value,
        threshold=cfg.performance_drop,
        reference=reference,
        drop=drop,
        higher_is_better=higher_is_better,
        labelled_rows=(segment or d).get("labelled_rows"),
        segments=names,
    )
    if drop is not None and value is not None and reference is not None:
        direction = "below" if higher_is_better else "above"
        summary = (
            f"Performance drop in {subject}: {label} {value:.4g} is {drop:.1%} "
            f"{direction} the reference {reference:.4g} "
            f"(allowed {cfg.performance_drop:.0%})"
        )
    else:
        summary = f"Performance check failed in {subject}"
    summary += f" over {window_text(result.window_start, result.window_end)}"
    if names and (segment is None or len(names) > 1):
        summary += f"; failing segments: {', '.join(names[:TOP_FEATURES])}"
    severe = drop is not None and drop >= 2 * cfg.performance_drop > 0
    return Finding(
        DECAY,
        True,
        Severity.critical if severe else Severity.warning,
        summary,
        details,
        failed_check=True,
    )


def _measure(
    d: dict[str, Any], score: float | None
) -> tuple[str, float | None, float | None, bool, float | None]:
    """(metric, value, reference, higher_is_better, drop) of a decay result or segment."""
    metric = str(readings.first(d, "metric", "metric_name") or "performance")
    value = readings.number(readings.first(d, "value", "current"))
    if value is None:
        value = readings.number(score)
    reference = readings.number(readings.first(d, "reference", "reference_value", "baseline"))
    higher_is_better = bool(
        d.get(
            "higher_is_better",
            metric.lower() not in {"mae", "mse", "rmse", "mape", "log_loss", "logloss"},
        )
    )
    drop = readings.number(d.get("drop"))
    if drop is None and value is not None and reference:
        change = (reference - value) if higher_is_better else (value - reference)
        drop = change / abs(reference)
    return metric, value, reference, higher_is_better, drop


def hardware(result: CheckResult, cfg: CheckConfig, subject: str) -> Finding:
    """Hardware check results (idle GPU, metrics missing) fire one alert while they fail."""
    if _silent(result):
        return Finding(HARDWARE, None)
    if result.status != CheckStatus.fail:
        return Finding(HARDWARE, False)
    reason = str(
        readings.first(result.details, "reason", "message", "finding") or "hardware check failed"
    )
    details = base_details(
        result,
        metric=str(readings.first(result.details, "metric") or "gpu"),
        value=result.score,
        threshold=readings.first(result.details, "threshold"),
    )
    return Finding(HARDWARE, True, Severity.warning, f"{subject}: {reason}", details)


def check_error(result: CheckResult, subject: str) -> Finding:
    """The check itself could not run: monitoring of the monitoring."""
    if result.status != CheckStatus.error:
        return Finding(CHECK_ERROR, False, key=str(result.kind))
    error = str(readings.first(result.details, "error", "message") or "unknown error")
    details = base_details(result, metric="check run", value="error", threshold=None, error=error)
    summary = (
        f"The {result.kind} check of {subject} could not run over "
        f"{window_text(result.window_start, result.window_end)}: {error}"
    )
    return Finding(
        CHECK_ERROR, True, Severity.warning, summary[:2000], details, key=str(result.kind)
    )
