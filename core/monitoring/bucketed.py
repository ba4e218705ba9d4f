"""What one time bucket of check results says, so a long range never hides an episode.

A chart over a year draws one point per day, but a column that drifted for three hours or a
feed that went null for one check must still show in that day's point. So every check in a
bucket counts: per column the strongest drift (with the test and threshold of the check that
measured it), the highest missing share, the union of new categories and the worst verdict;
per bucket the highest share of drifted columns. Pure functions over the checks' readings
(`readings.py`); the queries in `queries.py` feed them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from modeldeck.core.monitoring import readings
from modeldeck.core.monitoring.models import CheckKind, CheckStatus
from modeldeck.core.monitoring.readings import OVERALL, ColumnReading, MetricReading

# Worse first when sorted descending; a column verdict the check did not give ranks lowest.
STATUS_RANK: dict[str, int] = {
    CheckStatus.fail: 4,
    CheckStatus.error: 3,
    CheckStatus.warn: 2,
    CheckStatus.no_data: 1,
    CheckStatus.ok: 0,
}
MAX_CATEGORIES = 50


class BucketColumn(ColumnReading):
    """One column over one bucket (or one check): the worst of what its checks measured.

    `check_id` names the check that measured the value shown (the strongest drift, else the
    worst verdict), so its report is the one to open."""

    checks: int = 1  # checks in the bucket that reported this column
    missing_over_limit: bool | None = None  # above the check's own stored limit, in any check


def rank(status: str | None) -> int:
    """How bad a status is (fail > error > warn > no_data > ok; unknown lowest)."""
    return STATUS_RANK.get(status, -1) if status is not None else -1


def over_limit(reading: ColumnReading) -> bool | None:
    """Missing share above the limit the check itself stored for this column (its reference's
    share plus the allowance, as the quality check computed it); unknown without one."""
    if reading.missing_share is None or reading.missing_threshold is None:
        return None
    return reading.missing_share > reading.missing_threshold


def _one(reading: ColumnReading, *, at: datetime, version: str) -> BucketColumn:
    values: dict[str, Any] = dict(reading.__dict__)
    values.update(at=at, version=version, checks=1, missing_over_limit=over_limit(reading))
    return BucketColumn.model_construct(**values)  # already validated as a ColumnReading


def latest(
    check_id: int, details: dict[str, Any], *, at: datetime, version: str
) -> list[BucketColumn]:
    """One check's columns exactly as `readings.columns` reads them."""
    found = readings.columns(details, at=at, version=version, check_id=check_id)
    return [_one(r, at=at, version=version) for r in found]


def _get(c: dict[str, Any], key: str, *aliases: str) -> Any:
    value = c.get(key)
    if value is None and aliases:
        value = readings.first(c, *aliases)
    return value


def _num(value: Any) -> float | None:
    if type(value) is float:  # exact types: a bool is an int, and no number
        return value if math.isfinite(value) else None
    return float(value) if type(value) is int else None


def _categories(value: Any) -> list[str]:
    """As readings.columns lists them: a list of values, or the keys of {value: count}."""
    if isinstance(value, list):
        return [str(v) for v in value][:MAX_CATEGORIES]
    if isinstance(value, dict):
        return [str(k) for k in value][:MAX_CATEGORIES]
    return [value] if isinstance(value, str) else []


class _Drift:
    """One column's drift over a bucket's checks, read straight from their details (a year is
    ~9k checks × columns: too many for a model object each) with the spellings and number
    rules of `readings.columns`; the strongest reading wins, the newest on a tie."""

    __slots__ = ("checks", "drifted", "shown", "strength")

    def __init__(self) -> None:
        self.checks = 0
        self.drifted: bool | None = None
        self.strength: float | None = None
        self.shown: tuple[int, str | None, float | None, float | None] = (0, None, None, None)

    def add(self, check_id: int, c: dict[str, Any]) -> None:
        method = _get(c, "method", "stattest", "stattest_name", "test")
        method = str(method) if method is not None else None
        score = _num(_get(c, "score", "drift_score", "p_value"))
        threshold = _num(_get(c, "threshold", "stattest_threshold"))
        drifted = _get(c, "drifted", "drift_detected")
        self.checks += 1
        if drifted is not None:
            self.drifted = bool(drifted) or self.drifted is True
        strength = readings.strength(score, threshold, method)
        if strength is not None and (self.strength is None or strength >= self.strength):
            self.strength = strength
            self.shown = (check_id, method, score, threshold)
        elif self.strength is None:
            self.shown = (check_id, method, score, threshold)

    def result(self, column: str, at: datetime, version: str) -> BucketColumn:
        check_id, method, score, threshold = self.shown
        return BucketColumn.model_construct(
            at=at,
            version=version,
            check_id=check_id,
            column=column,
            method=method,
            score=score,
            threshold=threshold,
            drifted=self.drifted,
            strength=self.strength,
            checks=self.checks,
        )


class _Quality:
    """One column's data quality over a bucket's checks (see _Drift): the highest missing
    share (with the limit its check stored), the worst verdict (with its problem), the union of
    new categories, any type mismatch or stuck value."""

    __slots__ = (
        "categories",
        "checks",
        "limit",
        "mismatches",
        "missing",
        "out_of_range",
        "over",
        "stuck",
        "type_ok",
        "worst",
        "worst_key",
    )

    def __init__(self) -> None:
        self.checks = 0
        self.missing: float | None = None
        self.limit: float | None = None
        self.over: bool | None = None
        self.out_of_range: float | None = None
        self.type_ok: bool | None = None
        self.mismatches: int | None = None
        self.stuck: bool | None = None
        self.categories: dict[str, None] = {}
        self.worst_key = (-2, -1.0)
        self.worst: tuple[int, str | None, str | None] = (0, None, None)

    def add(self, check_id: int, c: dict[str, Any]) -> None:
        # Hot loop (once per column per check): plain dict reads, aliases only when needed.
        get = c.get
        self.checks += 1
        missing = get("missing_share")
        if missing is None:
            missing = readings.first(c, "share_missing", "null_share", "missing")
        missing = _num(missing)
        limit = _num(get("missing_threshold"))
        if missing is not None:
            if self.missing is None or missing >= self.missing:
                self.missing, self.limit = missing, limit
            if limit is not None and missing > limit:
                self.over = True
            elif limit is not None and self.over is None:
                self.over = False
        new = get("new_categories") or get("unseen_categories")
        if new:
            self.categories.update(dict.fromkeys(_categories(new)))
        out = _num(_get(c, "out_of_range_share", "out_of_range"))
        if out is not None and (self.out_of_range is None or out > self.out_of_range):
            self.out_of_range = out
        mismatches = _num(_get(c, "type_mismatches", "type_mismatch"))
        if mismatches is not None and (self.mismatches is None or mismatches > self.mismatches):
            self.mismatches = int(mismatches)
        type_ok = get("type_ok")
        if type_ok is None and mismatches is not None:
            type_ok = mismatches == 0
        if type_ok is not None:
            self.type_ok = bool(type_ok) and self.type_ok is not False
        stuck = get("stuck")
        if stuck is not None:
            self.stuck = bool(stuck) or self.stuck is True
        status = get("status")
        status = str(status) if status is not None else None
        key = (STATUS_RANK.get(status, -1) if status is not None else -1, missing or 0.0)
        if key >= self.worst_key:
            problem = _get(c, "problem", "message")
            self.worst_key = key
            self.worst = (check_id, status, str(problem) if problem else None)

    def result(self, column: str, at: datetime, version: str) -> BucketColumn:
        check_id, status, problem = self.worst
        return BucketColumn.model_construct(
            at=at,
            version=version,
            check_id=check_id,
            column=column,
            missing_share=self.missing,
            missing_threshold=self.limit,
            missing_over_limit=self.over,
            new_categories=list(self.categories)[:MAX_CATEGORIES],
            out_of_range_share=self.out_of_range,
            type_ok=self.type_ok,
            type_mismatches=self.mismatches,
            stuck=self.stuck,
            status=status,
            problem=problem,
            checks=self.checks,
        )


Key = tuple[int, datetime]  # (deployment id, bucket start)


class Buckets:
    """Running per-column aggregates of drift or quality checks, per deployment and bucket.

    Checks are added one at a time, oldest first, and their details dropped: a year of them
    is never held in memory at once."""

    def __init__(self, kind: CheckKind) -> None:
        self.kind = kind
        self._make = _Quality if kind == CheckKind.quality else _Drift
        self._cells: dict[Key, dict[str, _Drift | _Quality]] = {}
        self._shares: dict[Key, float] = {}

    def add(self, key: Key, check_id: int, score: float | None, details: dict[str, Any]) -> None:
        cells = self._cells.get(key)
        if cells is None:
            cells = self._cells[key] = {}
        for name, c in readings.column_map(details).items():
            cell = cells.get(name)
            if cell is None:
                cell = cells[name] = self._make()
            cell.add(check_id, c)
        if self.kind == CheckKind.drift:
            share = readings.share_drifted(details, score)
            if share is not None and share > self._shares.get(key, -1.0):
                self._shares[key] = share

    def columns(self, key: Key, *, version: str) -> list[BucketColumn]:
        """The bucket's columns, each the worst of what its checks measured."""
        return [c.result(name, key[1], version) for name, c in self._cells.get(key, {}).items()]

    def share_drifted(self, key: Key) -> float | None:
        """The highest share of drifted columns among the bucket's checks."""
        return self._shares.get(key)


def columns(
    checks: Sequence[tuple[int, dict[str, Any]]],
    *,
    at: datetime,
    version: str,
    kind: CheckKind,
) -> list[BucketColumn]:
    """Per column, what these `kind` checks ((id, details), oldest first) say together."""
    found = Buckets(kind)
    for check_id, details in checks:
        found.add((0, at), check_id, None, details)
    return found.columns((0, at), version=version)


def share_drifted(checks: Sequence[tuple[dict[str, Any], float | None]]) -> float | None:
    """The highest share of drifted columns among these checks ((details, score))."""
    found = Buckets(CheckKind.drift)
    at = datetime.min
    for details, score in checks:
        found.add((0, at), 0, score, details)
    return found.share_drifted((0, at))


def best_per_segment(metrics: Sequence[MetricReading]) -> list[MetricReading]:
    """Per metric, segment and time: the realised value where labels exist, else the
    label-free estimate (the overall values are left out: the main chart draws both)."""
    best: dict[tuple[str, str, datetime], MetricReading] = {}
    for m in metrics:
        if m.segment == OVERALL:
            continue
        key = (m.metric, m.segment, m.at)
        held = best.get(key)
        if held is None or (m.source == "realised", m.check_id) > (
            held.source == "realised",
            held.check_id,
        ):
            best[key] = m
    return sorted(best.values(), key=lambda m: (m.metric, m.segment, m.at))
