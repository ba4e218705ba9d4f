"""The synthetic data carries exactly the planted problems, deterministically."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from modeldeck.core.demo import behaviours, data, world
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import profile

START = datetime(2026, 1, 1, tzinfo=UTC)


def day_table(model: str, day: int, version: str = "1.0.0") -> pa.Table:
    return data.predictions(model, version, data.requests(model, day, START), shadow=False)


def test_the_same_day_is_the_same_data() -> None:
    first, second = (
        data.requests("fraud-detector", 12, START),
        data.requests("fraud-detector", 12, START),
    )
    assert list(first.ids) == list(second.ids)
    assert np.array_equal(first.features["amount"], second.features["amount"])
    assert not np.array_equal(
        first.features["amount"][:50],
        data.requests("fraud-detector", 13, START).features["amount"][:50],
    )


def test_traffic_is_hourly_with_a_daily_curve() -> None:
    batch = data.requests("search-ranker", 10, START)
    hours = ((batch.times - START.timestamp()) // 3600 % 24).astype(int)
    counts = np.bincount(hours, minlength=24)
    assert counts.min() > 0
    assert counts[16] > 1.5 * counts[4]  # afternoon peak, night trough
    assert 0.7 < len(batch) / (24 * world.model("search-ranker").rate_per_hour) < 1.3
    assert np.all(np.diff(batch.times) >= 0)
    assert len(set(batch.ids)) == len(batch)


def test_fraud_inputs_shift_from_day_60_only() -> None:
    before = [data.requests("fraud-detector", d, START) for d in (20, 55)]
    after = data.requests("fraud-detector", 85, START)
    means = [np.mean(np.log(b.features["amount"])) for b in before]
    assert abs(means[0] - means[1]) < 0.05
    assert np.mean(np.log(after.features["amount"])) - means[1] > 0.5
    share = [
        np.mean(np.isin(b.features["merchant_category"], ["electronics", "gaming"]))
        for b in (*before, after)
    ]
    assert abs(share[0] - share[1]) < 0.03 and share[2] > share[1] + 0.25
    for name in ("country", "channel"):
        assert set(before[0].features[name]) == set(after.features[name])


def test_churn_upstream_breaks_on_day_80() -> None:
    before = day_table("churn-predictor", 79)
    after = day_table("churn-predictor", 80)
    assert before.column("monthly_spend").null_count == 0
    assert after.column("monthly_spend").null_count == after.num_rows
    assert "family" not in set(before.column("plan").to_pylist())
    family = pc.sum(pc.equal(after.column("plan"), "family")).as_py() / after.num_rows
    assert 0.08 < family < 0.16


def test_eta_errors_grow_after_day_50_while_inputs_stay() -> None:
    def mae(day: int) -> float:
        batch = data.requests("eta-regressor", day, START)
        answered = data.predictions("eta-regressor", "1.0.0", batch, shadow=False)
        truth = data.outcomes("eta-regressor", batch).astype(float)
        return float(np.mean(np.abs(answered.column(C.PREDICTION).to_numpy() - truth)))

    assert abs(mae(20) - mae(45)) < 0.3
    assert mae(85) > 1.5 * mae(45)
    early, late = (data.requests("eta-regressor", d, START) for d in (20, 85))
    assert abs(early.features["distance_km"].mean() - late.features["distance_km"].mean()) < 0.3


@pytest.mark.parametrize("model", ["fraud-detector", "churn-predictor", "search-ranker"])
def test_classifiers_are_calibrated_so_estimates_track_reality(model: str) -> None:
    reference = data.reference(model, "1.0.0", 30.0, START)
    computed = profile.compute(reference, task_type="classification")
    calibration = computed.profile.metrics["calibration"]
    assert calibration["calibrated"] and calibration["ece"] < 0.03
    assert computed.profile.task.positive == behaviours.BEHAVIOURS[model].positive


def test_labels_arrive_after_their_predictions_with_each_models_delay() -> None:
    hours = {}
    for model in ("fraud-detector", "churn-predictor", "eta-regressor", "search-ranker"):
        batch = data.requests(model, 30, START)
        arrivals = data.label_times(model, batch, data.outcomes(model, batch))
        delay = (arrivals - batch.times) / 3600
        assert delay.min() > 0
        hours[model] = float(np.median(delay))
    assert hours["search-ranker"] < 0.5 < hours["eta-regressor"] < 2
    assert hours["churn-predictor"] > 24 * 7
    assert hours["fraud-detector"] < 6


def test_shadow_predictions_have_their_own_ids_and_the_staging_versions_answers() -> None:
    batch = data.requests("search-ranker", 5, START)
    served = data.predictions("search-ranker", "3.1.0", batch, shadow=False)
    shadow = data.predictions("search-ranker", "3.2.0", batch, shadow=True)
    ids = served.column(C.PREDICTION_ID).to_pylist()
    assert shadow.column(C.PREDICTION_ID).to_pylist() == [f"{i}-s" for i in ids]
    assert served.column("bm25").equals(shadow.column("bm25"))
    assert not served.column("proba_relevant").equals(shadow.column("proba_relevant"))
