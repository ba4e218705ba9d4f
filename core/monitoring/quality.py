"""Data quality of a window against the reference profile, per column.

Missing values, type mismatches, values outside the reference range, categories the
reference never saw, a feature stuck at one value, and the row count against expectation.
Each finding records the threshold it was judged by. With a segment column the column checks
repeat per segment (`by_segment`), and the worst segment counts towards the status.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from modeldeck.core.config import CheckConfig
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import reference, segments
from modeldeck.core.monitoring.models import CheckStatus, ColumnKind
from modeldeck.core.monitoring.profile import ColumnSpec
from modeldeck.core.monitoring.window import Outcome, Window, worst

OUT_OF_RANGE = (0.01, 0.05)  # share of values outside the reference range: warn, fail
NEW_CATEGORIES = (0.01, 0.05)  # share of values in categories the reference never had
ROWS_EXPECTED = (0.5, 2.0)  # row count below/above these fractions of the expectation: warn
TOP_NEW = 10


def check(window: Window) -> Outcome:
    profile = window.require_profile()
    table = window.require_table()
    cfg = window.cfg
    expected = expected_rows(cfg)
    if table.num_rows < cfg.min_rows:
        return Outcome(
            CheckStatus.no_data,
            f"{table.num_rows} prediction(s) in the window, fewer than min_rows {cfg.min_rows}",
            {"rows": table.num_rows, "min_rows": cfg.min_rows, "expected_rows": expected},
        )
    specs = dict(profile.features)
    if profile.prediction is not None and C.PREDICTION in table.column_names:
        specs[C.PREDICTION] = profile.prediction
    columns = {
        name: column_quality(spec, table.column(name), window.mismatches.get(name, 0), cfg)
        for name, spec in specs.items()
    }
    details: dict[str, Any] = {
        "columns": columns,
        "rows": table.num_rows,
        "thresholds": {
            "max_missing_share": cfg.max_missing_share,
            "out_of_range": OUT_OF_RANGE,
            "new_categories": NEW_CATEGORIES,
        },
    }
    statuses = [CheckStatus(c["status"]) for c in columns.values()]
    problems = [f"{n}: {p}" for n, c in columns.items() for p in c["problems"]]
    warnings = [f"{n}: {w}" for n, c in columns.items() for w in c["warnings"]]
    if expected:
        ratio = table.num_rows / expected
        details["expected_rows"] = expected
        details["rows_ratio"] = ratio
        if not ROWS_EXPECTED[0] <= ratio <= ROWS_EXPECTED[1]:
            warnings.append(f"{table.num_rows} rows, expected about {expected:.0f}")
            statuses.append(CheckStatus.warn)
    details["problems"] = problems
    details["warnings"] = warnings
    failed: list[dict[str, Any]] = []
    if cfg.segment_column:  # the worst segment counts too, so an average cannot hide it
        details.update(by_segment(window, specs, cfg.segment_column))
        failed = details.get("segment_failures", [])
        statuses += [CheckStatus(f["status"]) for f in failed]
    status = worst(statuses)
    failing = sum(1 for s in columns.values() if s["status"] == CheckStatus.fail)
    score = failing / len(columns) if columns else 0.0
    message = (
        "; ".join(problems[:3])
        if problems
        else "; ".join(warnings[:3])
        if warnings
        else f"{len(columns)} columns clean over {table.num_rows} rows"
    )
    return Outcome(status, message + segments.message(failed), details, score)


def by_segment(window: Window, specs: dict[str, ColumnSpec], column: str) -> dict[str, Any]:
    """The same column checks per segment (segments.py says which). Ranges and categories
    are the whole reference's (a valid value is valid wherever it occurs); missing shares and
    distinct counts are the segment's own in the reference (one region may lack a field by
    design, or use one currency), else the whole reference's with no stuck test, when the
    reference has fewer than min_rows rows of it. Type mismatches and the row count are
    judged over the whole window only."""
    cfg, profile, table = window.cfg, window.require_profile(), window.require_table()
    if problem := segments.unusable(column, profile.features):
        return problem
    chosen, small = segments.split(window.frame([column])[column], cfg.min_rows)
    judged = [n for n in specs if n != column]
    ref = reference.load_frame(window.settings, profile, [column, *judged])
    reference_rows = segments.positions(ref[column], [s.key for s in chosen])
    found: dict[str, dict[str, Any]] = {}
    for segment in chosen:
        rows = table.select(judged).take(pa.array(segment.rows))
        own = reference_rows[segment.key]
        baseline = "segment" if len(own) >= cfg.min_rows else "whole reference"
        results = {}
        for name in judged:
            spec = replace(specs[name], n_unique=1)  # 1: no stuck test
            if baseline == "segment":
                values = segments.take(ref[name], own)
                spec = replace(
                    spec, missing_share=float(values.isna().mean()), n_unique=values.nunique()
                )
            results[name] = column_quality(spec, rows.column(name), 0, cfg)
        problems = [f"{n}: {p}" for n, c in results.items() for p in c["problems"]]
        warnings = [f"{n}: {w}" for n, c in results.items() for w in c["warnings"]]
        status = worst([CheckStatus(c["status"]) for c in results.values()])
        found[segment.name] = {
            "rows": len(segment.rows),
            "reference_rows": len(own),
            "baseline": baseline,
            "status": status.value,
            "columns": {n: c for n, c in results.items() if c["status"] != CheckStatus.ok},
            "problems": problems,
            "warnings": warnings,
            "finding": "; ".join((problems or warnings)[:3]),
        }
    return {
        "segment_column": column,
        "segments": found,
        "segments_too_small": small,
        "segment_failures": segments.failures(
            column, found, lambda f: len(f["problems"]) + len(f["warnings"]) / 100
        ),
    }


def expected_rows(cfg: CheckConfig) -> float | None:
    if cfg.expected_rows_per_hour is None:
        return None
    return cfg.expected_rows_per_hour * cfg.window_minutes / 60


def column_quality(
    spec: ColumnSpec, arr: pa.ChunkedArray, mismatches: int, cfg: CheckConfig
) -> dict[str, Any]:
    n = len(arr)
    problems: list[str] = []
    warnings: list[str] = []
    missing = arr.null_count / n if n else 0.0
    limit = min(1.0, spec.missing_share + cfg.max_missing_share)
    out: dict[str, Any] = {
        "kind": spec.kind.value,
        "rows": n,
        "missing_share": missing,
        "missing_threshold": limit,
        "reference_missing_share": spec.missing_share,
        "type_mismatches": mismatches,
    }
    if missing > limit:
        problems.append(
            f"{missing:.1%} missing (reference {spec.missing_share:.1%}, allowed {limit:.1%})"
        )
    if mismatches:
        problems.append(f"{mismatches} value(s) not of type {spec.dtype}")
    valid = n - arr.null_count
    if spec.dtype in ("double", "int64") and spec.min is not None and spec.max is not None:
        _range(spec, arr, valid, out, problems, warnings)
    if spec.kind == ColumnKind.categorical and spec.categories is not None:
        _categories(spec, arr, valid, out, problems, warnings)
    if valid >= cfg.min_rows and spec.n_unique > 1:
        distinct = pc.count_distinct(arr, mode="only_valid").as_py()
        out["n_unique"] = distinct
        if distinct == 1:
            value = pc.drop_null(arr)[0].as_py()
            out["stuck"] = True
            warnings.append(f"stuck at one value ({value!r}; the reference has {spec.n_unique})")
    status = CheckStatus.fail if problems else CheckStatus.warn if warnings else CheckStatus.ok
    out.update(
        status=status.value,
        problems=problems,
        warnings=warnings,
        problem="; ".join(problems) if problems else None,
    )
    return out


def _share_status(share: float, limits: tuple[float, float]) -> CheckStatus:
    if share > limits[1]:
        return CheckStatus.fail
    return CheckStatus.warn if share > limits[0] else CheckStatus.ok


def _range(
    spec: ColumnSpec,
    arr: pa.ChunkedArray,
    valid: int,
    out: dict[str, Any],
    problems: list[str],
    warnings: list[str],
) -> None:
    below = pc.sum(pc.less(arr, spec.min)).as_py() or 0
    above = pc.sum(pc.greater(arr, spec.max)).as_py() or 0
    share = (below + above) / valid if valid else 0.0
    out.update(
        range=[spec.min, spec.max],
        below_range=below,
        above_range=above,
        out_of_range_share=share,
        out_of_range_threshold=OUT_OF_RANGE[1],
    )
    status = _share_status(share, OUT_OF_RANGE)
    text = f"{share:.1%} outside the reference range [{spec.min:g}, {spec.max:g}]"
    if status == CheckStatus.fail:
        problems.append(text)
    elif status == CheckStatus.warn:
        warnings.append(text)


def _categories(
    spec: ColumnSpec,
    arr: pa.ChunkedArray,
    valid: int,
    out: dict[str, Any],
    problems: list[str],
    warnings: list[str],
) -> None:
    assert spec.categories is not None
    known = pa.array(list(spec.categories), type=arr.type)
    unseen = pc.filter(arr, pc.invert(pc.fill_null(pc.is_in(arr, value_set=known), True)))
    share = len(unseen) / valid if valid else 0.0
    counts = pc.value_counts(unseen) if len(unseen) else None
    top: dict[str, int] = {}
    if counts is not None:
        pairs = zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        )
        top = {str(v): int(c) for v, c in sorted(pairs, key=lambda p: -p[1])[:TOP_NEW]}
    out.update(
        new_categories=top, new_category_share=share, new_category_threshold=NEW_CATEGORIES[1]
    )
    status = _share_status(share, NEW_CATEGORIES)
    text = f"{share:.1%} in categories the reference never had: {', '.join(top)}"
    if status == CheckStatus.fail:
        problems.append(text)
    elif status == CheckStatus.warn:
        warnings.append(text)
