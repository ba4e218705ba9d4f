"""Per-column drift with evidently's own statistical tests, without the Report around them.

Why this equals DataDriftPreset: the preset (evidently 0.7, `ValueDrift` per column through
`legacy.calculations.data_drift.get_one_column_drift`) drops NaN and ±inf from both sides,
picks a test with `stattests.registry._get_default_stattest` and calls it with the test's
default threshold. We do exactly that — `select_test` mirrors the selection rule and a test
pins it to evidently's own `get_stattest`; the test objects called are evidently's — and skip
everything else the preset computes per column (correlation matrices, histograms, binned
scatter plots, widgets, and the whole calculation a second time for `DriftedColumnsCount`).
Columns are independent, so they run on a thread pool (the heavy parts — numpy sorts inside
scipy — release the GIL); threads, not processes, keep Python's string hashing, and with it
the order of categories in every sum, identical to a plain evidently run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modeldeck.core.monitoring.models import ColumnKind

if TYPE_CHECKING:  # evidently is imported on first use: it costs seconds and ~100 MB
    from evidently.legacy.calculations.stattests.registry import StatTest
    from evidently.legacy.core import ColumnType

# Sizes at which evidently switches tests (registry._get_default_stattest).
SMALL_REFERENCE = 1000  # evidently: "reference_data.shape[0] <= 1000" is small
FEW_VALUES = 5
BINARY = 2
TEMP_BUDGET = 256 * 2**20
TEMP_BYTES_PER_VALUE = 80  # measured: ~150 MB for a 1M + 1M row numerical column


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    method: str | None  # evidently's test name ("wasserstein", "ks", ...)
    method_display: str | None
    threshold: float | None
    score: float | None
    drifted: bool | None
    reference_rows: int
    current_rows: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DatasetDrift:
    columns: list[ColumnDrift]
    drifted: int
    share: float
    dataset_drift: bool
    drift_share: float


def evidently_type(kind: ColumnKind) -> ColumnType:
    from evidently.legacy.core import ColumnType

    return ColumnType(kind.value)


def select_test(
    column_type: ColumnType, reference: pd.Series, n_values: Callable[[], int]
) -> StatTest:
    """evidently's default test for a column (registry._get_default_stattest, 0.7.x).

    `reference` is the cleaned reference column; `n_values` counts distinct values of
    reference and current together and is only called when the rule needs it (that count
    is the expensive part; the profile usually answers it)."""
    from evidently.legacy.calculations import stattests
    from evidently.legacy.core import ColumnType

    if column_type == ColumnType.Text:
        if reference.shape[0] > SMALL_REFERENCE:
            return stattests.abs_text_content_drift_stat_test
        return stattests.perc_text_content_drift_stat_test
    small = reference.shape[0] <= SMALL_REFERENCE
    if column_type == ColumnType.Numerical:
        values = n_values()
        if small:
            if values <= FEW_VALUES:
                return stattests.chi_stat_test if values > BINARY else stattests.z_stat_test
            return stattests.ks_stat_test
        return (
            stattests.jensenshannon_stat_test
            if values <= FEW_VALUES
            else stattests.wasserstein_stat_test
        )
    if column_type == ColumnType.Categorical:
        if small:
            return stattests.chi_stat_test if n_values() > BINARY else stattests.z_stat_test
        return stattests.jensenshannon_stat_test
    raise ValueError(f"no drift test for column type {column_type}")


def clean(series: pd.Series) -> pd.Series:
    """What evidently does before testing: ±inf become missing, missing values are dropped."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy()
        keep = np.isfinite(values)
        return series if keep.all() else series[keep]
    return series.dropna() if series.hasnans else series


def column_drift(
    name: str,
    kind: ColumnKind,
    reference: pd.Series,
    current: pd.Series,
    reference_unique: int | None = None,
) -> ColumnDrift:
    """Drift of one column, as evidently's ValueDrift computes it."""
    ref, cur = clean(reference), clean(current)
    if ref.empty or cur.empty:
        side = "reference" if ref.empty else "current window"
        return ColumnDrift(
            name,
            kind.value,
            None,
            None,
            None,
            None,
            None,
            len(ref),
            len(cur),
            error=f"no values in the {side}",
        )
    column_type = evidently_type(kind)

    def n_values() -> int:
        # The union has at least as many distinct values as the reference alone.
        if reference_unique is not None and reference_unique > FEW_VALUES:
            return reference_unique
        return int(pd.concat([ref, cur]).nunique())

    test = select_test(column_type, ref, n_values)
    result = test(ref, cur, column_type, None)
    return ColumnDrift(
        name,
        kind.value,
        test.name,
        test.display_name,
        float(result.actual_threshold),
        float(result.drift_score),
        bool(result.drifted),
        len(ref),
        len(cur),
    )


def parallelism(values: int, columns: int) -> int:
    """Threads for the column tests: one per core, as long as the concurrent tests'
    temporaries (scipy's Wasserstein holds about TEMP_BYTES_PER_VALUE per value) fit in
    TEMP_BUDGET; at 1M + 1M rows one test at a time keeps a check under 1 GB."""
    fit = TEMP_BUDGET // max(1, values * TEMP_BYTES_PER_VALUE)
    return max(1, min(columns, os.cpu_count() or 1, fit))


def table_drift(
    reference: Mapping[str, pd.Series],
    current: Mapping[str, pd.Series],
    columns: dict[str, tuple[ColumnKind, int | None]],
    *,
    drift_share: float,
    workers: int | None = None,
) -> DatasetDrift:
    """Drift of every column plus evidently's dataset decision (share >= drift_share).

    Columns without values in the window cannot be tested (evidently raises); they are
    reported with an error and left out of the share."""
    rows = {name: len(reference[name]) + len(current[name]) for name in columns}
    workers = workers or parallelism(max(rows.values(), default=0), len(columns))
    # Longest first: numerical columns on a large reference dominate the run time.
    order = sorted(columns, key=lambda c: columns[c][0] != ColumnKind.numerical)

    def run(name: str) -> ColumnDrift:
        kind, unique = columns[name]
        return column_drift(name, kind, reference[name], current[name], unique)

    if workers > 1 and len(order) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift") as pool:
            done = dict(zip(order, pool.map(run, order), strict=True))
    else:
        done = {name: run(name) for name in order}
    results = [done[name] for name in columns]
    return summarise(results, drift_share)


def summarise(results: list[ColumnDrift], drift_share: float) -> DatasetDrift:
    tested = [r for r in results if r.drifted is not None]
    drifted = sum(1 for r in tested if r.drifted)
    share = drifted / len(tested) if tested else 0.0
    return DatasetDrift(
        columns=results,
        drifted=drifted,
        share=share,
        dataset_drift=bool(tested) and share >= drift_share,
        drift_share=drift_share,
    )
