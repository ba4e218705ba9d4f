"""Drift and data quality per value of CheckConfig.segment_column, so a problem local to one
segment (a region, a channel) is not hidden by the average; decay.py does the same for
performance.

Which segments: the MAX_SEGMENTS largest values of the column in the window, and of those
only the ones with at least min_rows rows (thinner ones are listed by size, not judged). The
segment column is left out of its own segments: inside one it is constant by construction.

Drift compares a segment's window rows with the reference rows of the *same* value. Against
the whole reference, a segment that merely differs from the population (higher amounts in
one region) would be reported as drifted in every window although nothing changed — that is
composition, not drift. So a segment with fewer than min_rows reference rows is not tested
(`no_data` and a note; a value the reference never had is the quality check's new category).
A column drifts in a segment when evidently's default test for the segment's sizes says so
(the same test and threshold as the whole window) *and* a two-sample significance test
agrees at 0.05 / the number of tests judged together (`family`: every tested column of
every segment; Bonferroni). The second condition is what makes hundreds of tests sound:
evidently's chi-square treats the reference counts as the known distribution, which with a
reference no larger than the window flags a healthy categorical column far more often than
5 %; and a distance (Wasserstein, Jensen-Shannon) from a few hundred rows is noisy and has
no p-value to correct. K-S for numerical columns, chi-square of homogeneity (the 2 x k
table of both samples) otherwise. On a healthy model any segment of numerical and
categorical columns then drifts in at most ~5 % of checks (text columns are not confirmed).
A segment fails on its own dataset drift (share >= drift_share) and warns when a column or
the prediction drifted, as the whole window does.

Work is bounded: the segments partition the window (and the reference), so all of them
together cost about one more unsegmented check, and nothing here runs without a segment
column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from modeldeck.core.config import CheckConfig
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import drift
from modeldeck.core.monitoring.models import CheckStatus, ColumnKind

MAX_SEGMENTS = 20  # as decay.MAX_SEGMENTS
ALPHA = 0.05  # false-alarm rate of all segment drift tests of one check together
MISSING = "(missing)"
TOP_COLUMNS = 5


@dataclass(frozen=True)
class Segment:
    key: Any  # the column's value (None: missing)
    name: str  # how it is shown: "eu", "(missing)"
    rows: np.ndarray  # its row positions in the window


def unusable(column: str, features: Mapping[str, Any]) -> dict[str, str]:
    """The details of a drift or quality check whose segment column is not one of the model's
    features (empty when it is): segments need its values in both the window and the
    reference."""
    if column in features:
        return {}
    return {"segment_error": f"segment column {column!r} is not a feature"}


def label(value: Any) -> str:
    """A value as the segment's name, spelled as Arrow casts it to a string (decay's way)."""
    if value is None:
        return MISSING
    return str(pa.scalar(value).cast(pa.string()).as_py())


def _codes(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    codes, uniques = pd.factorize(series, use_na_sentinel=True)  # -1: missing
    return np.asarray(codes), [v.item() if isinstance(v, np.generic) else v for v in uniques]


def split(series: pd.Series, min_rows: int) -> tuple[list[Segment], dict[str, int]]:
    """The largest values of `series` (at most MAX_SEGMENTS) with at least `min_rows` rows,
    largest first; and the row counts of those among them that are too small to judge."""
    codes, uniques = _codes(series)
    counts = np.bincount(codes + 1, minlength=len(uniques) + 1)  # slot 0 counts missing
    largest = sorted((i for i in range(len(counts)) if counts[i]), key=lambda i: -counts[i])
    chosen: list[Segment] = []
    small: dict[str, int] = {}
    for slot in largest[:MAX_SEGMENTS]:
        key = uniques[slot - 1] if slot else None
        if counts[slot] < min_rows:
            small[label(key)] = int(counts[slot])
            continue
        chosen.append(Segment(key, label(key), np.flatnonzero(codes == slot - 1)))
    return chosen, small


def positions(series: pd.Series, keys: list[Any]) -> dict[Any, np.ndarray]:
    """The row positions of each key (None: missing) in `series`, e.g. the reference."""
    codes, uniques = _codes(series)
    index = {value: code for code, value in enumerate(uniques)}
    out: dict[Any, np.ndarray] = {}
    for key in keys:
        code = -1 if key is None else index.get(key)
        out[key] = np.flatnonzero(codes == code) if code is not None else np.empty(0, np.intp)
    return out


def take(series: pd.Series, rows: np.ndarray) -> pd.Series:
    return series.iloc[rows].reset_index(drop=True)


def failures(
    column: str, found: dict[str, dict[str, Any]], badness: Callable[[dict[str, Any]], float]
) -> list[dict[str, Any]]:
    """Segments that warn or fail, worst first (fail before warn, then by `badness`), each
    named `column=value` as decay names them, for the alert and the pages."""
    out = [
        {"segment": f"{column}={name}", **entry}
        for name, entry in found.items()
        if entry.get("status") in (CheckStatus.warn, CheckStatus.fail)
    ]
    out.sort(key=lambda f: (f["status"] != CheckStatus.fail, -badness(f), f["segment"]))
    return out


def message(failed: list[dict[str, Any]]) -> str:
    """What the check's message adds about its segments ('' when none warns or fails)."""
    if not failed:
        return ""
    worst = failed[0]
    text = f"; worst segment {worst['segment']} ({worst['status']}): {worst['finding']}"
    if len(failed) > 1:
        text += f"; {len(failed) - 1} more segment(s) warn or fail"
    return text


def drift_segments(
    column: str,
    reference: Mapping[str, pd.Series],
    current: Mapping[str, pd.Series],
    testable: dict[str, tuple[ColumnKind, int | None]],
    prediction: ColumnKind | None,
    cfg: CheckConfig,
) -> dict[str, Any]:
    """Per-segment drift for the drift check's details (segments, segment_failures)."""
    chosen, small = split(current[column], cfg.min_rows)
    reference_rows = positions(reference[column], [s.key for s in chosen])
    # The reference's distinct counts are the whole column's; a segment's own may be fewer.
    tested: dict[str, tuple[ColumnKind, int | None]] = {
        n: (kind, None) for n, (kind, _) in testable.items() if n != column
    }
    judged_segments = sum(1 for s in chosen if len(reference_rows[s.key]) >= cfg.min_rows)
    family = max(1, judged_segments * (len(tested) + (prediction is not None)))
    found: dict[str, dict[str, Any]] = {}
    for segment in chosen:
        ref_rows = reference_rows[segment.key]
        entry: dict[str, Any] = {"rows": len(segment.rows), "reference_rows": len(ref_rows)}
        if len(ref_rows) < cfg.min_rows:
            entry.update(
                status=CheckStatus.no_data.value,
                note=f"not tested: the reference has {len(ref_rows)} row(s) of this segment, "
                f"fewer than min_rows {cfg.min_rows} (against the whole reference a segment's "
                "difference from the population would read as drift)",
            )
        else:
            ref = {n: take(reference[n], ref_rows) for n in tested}
            cur = {n: take(current[n], segment.rows) for n in tested}
            if prediction is not None:
                ref[C.PREDICTION] = take(reference[C.PREDICTION], ref_rows)
                cur[C.PREDICTION] = take(current[C.PREDICTION], segment.rows)
            entry.update(_segment_drift(ref, cur, tested, prediction, family, cfg))
        found[segment.name] = entry
    return {
        "segment_column": column,
        "segments": found,
        "segments_too_small": small,
        "segment_family": family,
        "segment_failures": failures(column, found, lambda f: f.get("share_drifted") or 0.0),
    }


def _segment_drift(
    ref: dict[str, pd.Series],
    cur: dict[str, pd.Series],
    tested: dict[str, tuple[ColumnKind, int | None]],
    prediction: ColumnKind | None,
    family: int,
    cfg: CheckConfig,
) -> dict[str, Any]:
    evidence: dict[str, dict[str, Any]] = {}
    found = drift.table_drift(ref, cur, tested, drift_share=cfg.drift_share)
    columns = [confirm(c, ref[c.column], cur[c.column], family, evidence) for c in found.columns]
    result = drift.summarise(columns, cfg.drift_share)
    output = None
    if prediction is not None:
        output = drift.column_drift(C.PREDICTION, prediction, ref[C.PREDICTION], cur[C.PREDICTION])
        output = confirm(output, ref[C.PREDICTION], cur[C.PREDICTION], family, evidence)
    tested_columns = [c for c in result.columns if c.drifted is not None]
    drifted = sorted(
        (c for c in tested_columns if c.drifted), key=lambda c: evidence[c.column]["p_value"]
    )
    output_drifted = bool(output and output.drifted)
    status = (
        CheckStatus.fail
        if result.dataset_drift
        else CheckStatus.warn
        if drifted or output_drifted
        else CheckStatus.ok
    )
    finding = (
        f"{result.drifted} of {len(tested_columns)} columns drifted ({result.share:.0%}; "
        f"dataset drift at {cfg.drift_share:.0%})"
    )
    if drifted:
        finding += ": " + ", ".join(_text(c, evidence) for c in drifted[:TOP_COLUMNS])
    if output_drifted:
        finding += "; the prediction drifted"
    return {
        "status": status.value,
        "share_drifted": result.share,
        "drifted_count": result.drifted,
        "columns_tested": len(tested_columns),
        "dataset_drift": result.dataset_drift,
        "drifted_columns": [
            {
                "column": c.column,
                "method": c.method,
                "score": c.score,
                "threshold": c.threshold,
                **evidence[c.column],
            }
            for c in drifted
        ],
        "not_significant": {
            name: e for name, e in evidence.items() if e["p_value"] >= e["p_threshold"]
        },
        "untested": {c.column: c.error for c in result.columns if c.error},
        "prediction": {**output.to_dict(), **evidence.get(C.PREDICTION, {})} if output else None,
        "finding": finding,
    }


def confirm(
    column: drift.ColumnDrift,
    reference: pd.Series,
    current: pd.Series,
    family: int,
    evidence: dict[str, dict[str, Any]],
) -> drift.ColumnDrift:
    """`column`, drifted only if a two-sample test agrees at ALPHA / `family` (see the module
    docstring); what that test said is recorded in `evidence`."""
    if not column.drifted or column.kind not in (ColumnKind.numerical, ColumnKind.categorical):
        return column
    test, p_value = two_sample_p(
        ColumnKind(column.kind), drift.clean(reference), drift.clean(current)
    )
    evidence[column.column] = {
        "method": column.method,
        "score": column.score,
        "threshold": column.threshold,
        "significance_test": test,
        "p_value": p_value,
        "p_threshold": ALPHA / family,
    }
    return column if p_value < ALPHA / family else replace(column, drifted=False)


def two_sample_p(kind: ColumnKind, reference: pd.Series, current: pd.Series) -> tuple[str, float]:
    """(test, p-value) that both samples come from one distribution: K-S for a numerical
    column with more than a few values, else chi-square of homogeneity on the 2 x k counts."""
    from scipy import stats

    values = pd.concat([reference, current]).nunique()
    if kind == ColumnKind.numerical and values > drift.FEW_VALUES:
        return "ks", float(stats.ks_2samp(reference.to_numpy(), current.to_numpy()).pvalue)
    counts = pd.concat([reference.value_counts(), current.value_counts()], axis=1).fillna(0)
    table = counts[counts.sum(axis=1) > 0].to_numpy().T
    if table.shape[1] < 2:
        return "chi2_contingency", 1.0
    return "chi2_contingency", float(stats.chi2_contingency(table, correction=False).pvalue)


def _text(c: drift.ColumnDrift, evidence: dict[str, dict[str, Any]]) -> str:
    return f"{c.column} ({c.method} {c.score:.3g}, p {evidence[c.column]['p_value']:.2g})"
