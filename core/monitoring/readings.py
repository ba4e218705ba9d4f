"""Read per-column and per-metric values out of a check result's `details`.

The checks write their evidence as JSON; these readers accept the spellings evidently and our
checks use (`columns` or `features`, `drifted` or `drift_detected`, `realised` or `value` …),
so the pages keep working when a check adds or renames a field. Pure functions, no database.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

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
MAX_STRENGTH = 100.0
OVERALL = "all"


class ColumnReading(BaseModel):
    """One column in one check: drift evidence and/or data-quality evidence."""

    at: datetime
    version: str
    check_id: int
    column: str
    method: str | None = None
    score: float | None = None
    threshold: float | None = None
    drifted: bool | None = None
    strength: float | None = None  # ≥ 1 means past the threshold, whatever the test
    missing_share: float | None = None
    new_categories: list[str] = []
    out_of_range_share: float | None = None
    type_ok: bool | None = None
    type_mismatches: int | None = None
    missing_threshold: float | None = None
    stuck: bool | None = None
    status: str | None = None  # the check's verdict on this column (quality)
    problem: str | None = None


class MetricReading(BaseModel):
    """One performance value of one check: realised (labels) or estimated (label-free)."""

    at: datetime
    version: str
    check_id: int
    metric: str
    source: Literal["realised", "estimated"]
    segment: str = OVERALL
    value: float


class SegmentReading(BaseModel):
    """A segment that warns or fails in one check (drift, quality): `column=value`."""

    segment: str
    status: str
    rows: int | None = None
    finding: str = ""


def segment_failures(details: dict[str, Any]) -> list[SegmentReading]:
    """The check's `segment_failures`, worst first as the check ordered them."""
    found = details.get("segment_failures")
    if not isinstance(found, list):
        return []
    return [
        SegmentReading(
            segment=str(f["segment"]),
            status=str(f.get("status") or "fail"),
            rows=int(rows) if (rows := number(f.get("rows"))) is not None else None,
            finding=str(first(f, "finding", "problem", "metric") or ""),
        )
        for f in found
        if isinstance(f, dict) and f.get("segment")
    ]


def first(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    return None


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def column_map(details: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for key in ("columns", "features", "per_column"):
        value = details.get(key)
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items() if isinstance(v, dict)}
        if isinstance(value, list):
            return {
                str(v.get("column") or v.get("name")): v
                for v in value
                if isinstance(v, dict) and (v.get("column") or v.get("name"))
            }
    return {}


def strength(score: float | None, threshold: float | None, method: str | None) -> float | None:
    """How many times past the threshold: p-value tests rank by threshold/score, distance tests
    by score/threshold, so 1 is the line for both."""
    if score is None or not threshold:
        return None
    if str(method or "").split(" ")[0].lower() in P_VALUE_TESTS:
        return MAX_STRENGTH if score <= 0 else min(threshold / score, MAX_STRENGTH)
    return min(score / threshold, MAX_STRENGTH)


def share_drifted(details: dict[str, Any], score: float | None = None) -> float | None:
    """Share of drifted columns: written by the check, else counted from its columns."""
    share = number(first(details, "share_drifted", "drift_share", "share_of_drifted_columns"))
    if share is not None:
        return share
    cols = column_map(details)
    flags = [first(c, "drifted", "drift_detected") for c in cols.values()]
    known = [bool(f) for f in flags if f is not None]
    if known:
        return sum(known) / len(known)
    return score


def _categories(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value][:50]
    if isinstance(value, dict):
        return [str(k) for k in value][:50]
    if isinstance(value, str) and value:
        return [value]
    return []


def columns(
    details: dict[str, Any], *, at: datetime, version: str, check_id: int
) -> list[ColumnReading]:
    """Every column the check reported on, in the order it reported them."""
    out = []
    for name, c in column_map(details).items():
        method = first(c, "method", "stattest", "stattest_name", "test")
        score = number(first(c, "score", "drift_score", "p_value"))
        threshold = number(first(c, "threshold", "stattest_threshold"))
        drifted = first(c, "drifted", "drift_detected")
        mismatches = number(first(c, "type_mismatches", "type_mismatch"))
        type_ok = first(c, "type_ok")
        if type_ok is None and mismatches is not None:
            type_ok = mismatches == 0
        out.append(
            ColumnReading(
                at=at,
                version=version,
                check_id=check_id,
                column=name,
                method=str(method) if method is not None else None,
                score=score,
                threshold=threshold,
                drifted=bool(drifted) if drifted is not None else None,
                strength=strength(score, threshold, method),
                missing_share=number(
                    first(c, "missing_share", "share_missing", "null_share", "missing")
                ),
                new_categories=_categories(first(c, "new_categories", "unseen_categories")),
                out_of_range_share=number(first(c, "out_of_range_share", "out_of_range")),
                type_ok=bool(type_ok) if type_ok is not None else None,
                type_mismatches=int(mismatches) if mismatches is not None else None,
                missing_threshold=number(first(c, "missing_threshold")),
                stuck=bool(c["stuck"]) if c.get("stuck") is not None else None,
                status=str(c["status"]) if c.get("status") is not None else None,
                problem=str(first(c, "problem", "message", "error"))
                if first(c, "problem", "message", "error")
                else None,
            )
        )
    return out


_SOURCES: dict[Literal["realised", "estimated"], tuple[str, ...]] = {
    "realised": ("realised", "realized", "value", "current", "actual"),
    "estimated": ("estimated", "estimate", "cbpe", "estimated_value"),
}


def _values(
    data: dict[str, Any], primary: str
) -> list[tuple[str, Literal["realised", "estimated"], float]]:
    """(metric, source, value) triples. A `metrics` map ({"auc": {"realised": 0.9,
    "estimated": 0.91, "reference": 0.93}}, as the decay check writes) wins; otherwise the
    top-level values are read (a number for `metric`, or a map of metrics)."""
    metrics = data.get("metrics")
    if isinstance(metrics, dict) and any(isinstance(v, dict) for v in metrics.values()):
        return [
            (str(name), source, v)
            for name, entry in metrics.items()
            if isinstance(entry, dict)
            for source, keys in _SOURCES.items()
            if (v := number(first(entry, *keys))) is not None
        ]
    found = []
    for source, keys in _SOURCES.items():
        value = first(data, *keys)
        if isinstance(value, dict):
            found += [
                (str(k), source, v) for k, raw in value.items() if (v := number(raw)) is not None
            ]
        elif (v := number(value)) is not None:
            found.append((primary, source, v))
    return found


def _segments(details: dict[str, Any]) -> dict[str, dict[str, Any]]:
    value = first(details, "segments", "per_segment", "by_segment")
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items() if isinstance(v, dict)}
    if isinstance(value, list):
        return {
            str(first(v, "segment", "name", "value")): v
            for v in value
            if isinstance(v, dict) and first(v, "segment", "name", "value") is not None
        }
    return {}


def metrics(
    details: dict[str, Any], *, at: datetime, version: str, check_id: int
) -> list[MetricReading]:
    """Realised and estimated metric values of a decay check, overall and per segment."""
    primary = str(first(details, "metric", "metric_name") or "performance")
    out = [
        MetricReading(at=at, version=version, check_id=check_id, metric=m, source=s, value=v)
        for m, s, v in _values(details, primary)
    ]
    for segment, data in _segments(details).items():
        out += [
            MetricReading(
                at=at,
                version=version,
                check_id=check_id,
                metric=m,
                source=s,
                value=v,
                segment=segment,
            )
            for m, s, v in _values(data, primary)
        ]
    return out


def reference(details: dict[str, Any]) -> dict[str, float]:
    """The reference value(s) the decay check compared against."""
    metrics = details.get("metrics")
    if isinstance(metrics, dict):
        refs = {
            str(name): v
            for name, entry in metrics.items()
            if isinstance(entry, dict)
            and (v := number(first(entry, "reference", "baseline"))) is not None
        }
        if refs:
            return refs
    primary = str(first(details, "metric", "metric_name") or "performance")
    value = first(details, "reference", "reference_value", "baseline")
    if isinstance(value, dict):
        return {str(k): v for k, raw in value.items() if (v := number(raw)) is not None}
    v = number(value)
    return {primary: v} if v is not None else {}
