"""Our drift equals evidently's DataDriftPreset: same tests, same numbers, same decisions."""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType

from modeldeck.core.monitoring import drift
from modeldeck.core.monitoring.models import ColumnKind
from tests.bench import bench_drift


@pytest.mark.parametrize("column_type", [ColumnType.Numerical, ColumnType.Categorical])
@pytest.mark.parametrize("ref_rows", [30, 1000, 1001, 2500])
@pytest.mark.parametrize("n_values", [1, 2, 3, 5, 6, 40])
def test_test_selection_mirrors_evidentlys(
    column_type: ColumnType, ref_rows: int, n_values: int
) -> None:
    """select_test picks what evidently's get_stattest picks, around every switch point."""
    rng = np.random.default_rng(ref_rows + n_values)
    values = np.arange(n_values, dtype=float) * 1.5
    ref = pd.Series(rng.choice(values, ref_rows))
    cur = pd.Series(rng.choice(values, 300))
    if column_type == ColumnType.Categorical:
        ref, cur = ref.map(lambda v: f"c{v}"), cur.map(lambda v: f"c{v}")
    expected = get_stattest(ref, cur, column_type, None)
    unique = int(ref.nunique())
    got = drift.select_test(column_type, ref, lambda: int(pd.concat([ref, cur]).nunique()))
    assert got.name == expected.name
    # and with the profile's shortcut for the distinct count
    kind = ColumnKind(column_type.value)
    assert drift.column_drift("x", kind, ref, cur, unique).method == expected.name


@pytest.mark.slow
def test_identical_to_data_drift_preset_in_memory_and_end_to_end() -> None:
    """The bench's smoke size: evidently's Report vs our drift and our stored check, in one
    process (same string-hash seed), must agree exactly on every score and decision."""
    rows = 20_000
    evidently = bench_drift.evidently_side(rows)
    core = bench_drift.core_side(rows, workers=2)
    with tempfile.TemporaryDirectory() as directory:
        prepared = bench_drift.prepare_store(rows, directory)
        check = bench_drift.check_side(directory, prepared["deployment_id"])
    assert bench_drift.differences(evidently, core) == []
    assert bench_drift.differences(evidently, check) == []
    drifted = {c for c, v in evidently["columns"].items() if v["drifted"]}
    assert drifted == {"num_00", "num_01", "num_02", "num_03", "cat_00"}  # the shifted ones
    assert check["rows"] == rows


def test_small_samples_with_gaps_match_evidently() -> None:
    """K-S, chi-square and Z-test paths, NaN and inf in the data, an integer categorical."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(5)
    ref = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 600),
            "flag": rng.choice(["y", "n"], 600),
            "grade": rng.choice([1, 2, 3], 600),
            "few": rng.choice([0.5, 1.5], 600),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(0.4, 1, 300),
            "flag": rng.choice(["y", "n"], 300, p=[0.8, 0.2]),
            "grade": rng.choice([1, 2, 3], 300),
            "few": rng.choice([0.5, 1.5], 300),
        }
    )
    cur.loc[:9, "x"] = np.nan
    cur.loc[10:12, "x"] = np.inf
    kinds = {
        "x": ColumnKind.numerical,
        "flag": ColumnKind.categorical,
        "grade": ColumnKind.categorical,
        "few": ColumnKind.numerical,
    }
    definition = DataDefinition(
        numerical_columns=["x", "few"], categorical_columns=["flag", "grade"]
    )
    snap = (
        Report([DataDriftPreset()], include_tests=True)
        .run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        .dict()
    )
    theirs = {
        m["config"]["column"]: (float(m["value"]), m["config"]["method"])
        for m in snap["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }
    ours = drift.table_drift(
        ref.astype({"flag": "category"}),
        cur.astype({"flag": "category"}),
        {n: (k, int(ref[n].nunique())) for n, k in kinds.items()},
        drift_share=0.5,
    )
    assert {c.column: (c.score, c.method_display) for c in ours.columns} == theirs
    assert {c.column: c.method for c in ours.columns} == {
        "x": "ks",
        "flag": "z",
        "grade": "chisquare",
        "few": "z",
    }
