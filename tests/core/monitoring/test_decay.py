"""Decay: realised metrics against hand-computed values, CBPE estimates, segments."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from modeldeck.core.monitoring import performance as perf
from modeldeck.core.monitoring import service
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.monitoring.performance import Task
from modeldeck.core.registry.models import TaskType
from tests.core.monitoring import synth
from tests.core.monitoring.conftest import World, deploy, register

BINARY = Task(type="classification", classes=("0", "1"), positive="1")


def test_realised_metrics_match_a_hand_computation() -> None:
    # p(1) = .9 .8 .3 .2 ; predicted 1 1 0 0 ; truth 1 0 0 1
    p = np.array([0.9, 0.8, 0.3, 0.2])
    matrix = perf.probability_matrix(BINARY, {"1": p})
    y_pred = np.array(["1", "1", "0", "0"])
    y_true = np.array(["1", "0", "0", "1"])
    got = perf.realised(BINARY, y_true, y_pred, matrix)
    assert got["accuracy"] == pytest.approx(2 / 4)
    assert got["f1"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))  # TP=1 FP=1 FN=1
    assert got["auc"] == pytest.approx(2 / 4)  # positives .9,.2 beat negatives .8,.3 in 2 of 4


def test_cbpe_estimates_match_a_hand_computation() -> None:
    p = np.array([0.9, 0.8, 0.3, 0.2])
    matrix = perf.probability_matrix(BINARY, {"1": p})
    assert matrix is not None
    got = perf.estimated(BINARY, np.array(["1", "1", "0", "0"]), matrix)
    # P(correct) per row: .9 .8 .7 .8
    assert got["accuracy"] == pytest.approx(0.8)
    # expected TP = .9+.8, FP = .1+.2, FN = .3+.2
    assert got["f1"] == pytest.approx(3.4 / (3.4 + 0.3 + 0.5))
    # expected ROC: thresholds .9 .8 .3 .2 → TPR .409 .773 .909 1, FPR .125 .375 .875 1
    tpr = np.array([0, 0.9, 1.7, 2.0, 2.2]) / 2.2
    fpr = np.array([0, 0.1, 0.3, 1.0, 1.8]) / 1.8
    assert got["auc"] == pytest.approx(float(np.trapezoid(tpr, fpr)))


def test_cbpe_agrees_with_realised_on_calibrated_data() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(2, 2, 50_000)
    y_pred = np.where(p >= 0.5, "1", "0")
    y_true = np.where(rng.uniform(size=p.size) < p, "1", "0")
    matrix = perf.probability_matrix(BINARY, {"1": p})
    assert matrix is not None
    real = perf.realised(BINARY, y_true, y_pred, matrix)
    est = perf.estimated(BINARY, y_pred, matrix)
    for metric in ("accuracy", "f1", "auc"):
        assert est[metric] == pytest.approx(real[metric], abs=0.01)


def test_multiclass_uses_macro_averages() -> None:
    task = Task(type="classification", classes=("a", "b", "c"))
    proba = {
        "a": np.array([0.7, 0.1, 0.2]),
        "b": np.array([0.2, 0.8, 0.2]),
        "c": np.array([0.1, 0.1, 0.6]),
    }
    matrix = perf.probability_matrix(task, proba)
    y_pred = np.array(["a", "b", "c"])
    real = perf.realised(task, np.array(["a", "b", "b"]), y_pred, matrix)
    assert real["accuracy"] == pytest.approx(2 / 3)
    assert real["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert perf.estimated(task, y_pred, matrix)["accuracy"] == pytest.approx((0.7 + 0.8 + 0.6) / 3)


def test_regression_metrics() -> None:
    task = Task(type="regression")
    got = perf.realised(task, np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 1.0]), None)
    assert got == {"mae": pytest.approx(4 / 3), "rmse": pytest.approx(np.sqrt(10 / 3))}


def hand_batch(world: World, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n` predictions with p(1) cycling .9 .8 .3 .2 and truth 1 0 0 1 (accuracy 0.5)."""
    batch = synth.predictions(n, 21, world.window_start())
    p = np.tile([0.9, 0.8, 0.3, 0.2], n // 4)
    batch["proba_1"], batch["proba_0"] = p, 1 - p
    batch["prediction"] = (p >= 0.5).astype(int)
    labels = pd.DataFrame(
        {"prediction_id": batch["prediction_id"], "label": np.tile([1, 0, 0, 1], n // 4)}
    )
    return batch, labels


def run(world: World, **kwargs: object) -> CheckResult:
    return service.run_check(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        kind=CheckKind.decay,
        clock=world.clock,
        **kwargs,
    )  # type: ignore[arg-type]


def test_decay_without_labels_uses_the_estimate(world: World) -> None:
    batch, _ = hand_batch(world, 400)
    world.ingest(batch)
    result = run(world)
    d = result.details
    assert d["source"] == "estimated" and d["labelled_rows"] == 0
    assert d["metrics"]["accuracy"]["estimated"] == pytest.approx(0.8)
    assert d["metrics"]["accuracy"]["realised"] is None
    assert d["metrics"]["accuracy"]["reference"] == 0.8  # the version's registered metric
    assert d["metrics"]["accuracy"]["status"] == "ok"
    # auc 0.85 registered; the estimate on this batch is lower → the worst metric leads
    assert d["metric"] == "auc"
    assert result.status in (CheckStatus.warn, CheckStatus.fail)


def test_decay_realised_once_labels_arrive_beside_the_estimate(world: World) -> None:
    batch, labels = hand_batch(world, 400)
    window_end = world.clock()
    world.ingest(batch)
    world.clock.advance(days=3)
    service.ingest_labels(
        world.session,
        settings=world.settings,
        model="fraud",
        frame=labels,
        actor=world.admin,
        clock=world.clock,
    )
    result = run(world, window_end=window_end)
    d = result.details
    assert d["source"] == "realised" and d["labelled_rows"] == 400
    assert d["label_coverage"] == 1.0
    acc = d["metrics"]["accuracy"]
    assert acc["realised"] == pytest.approx(0.5) and acc["estimated"] == pytest.approx(0.8)
    assert acc["drop"] == pytest.approx((0.8 - 0.5) / 0.8)
    assert acc["status"] == "fail" and result.status == CheckStatus.fail
    assert d["metrics"]["f1"]["realised"] == pytest.approx(0.5)
    assert d["metrics"]["auc"]["realised"] == pytest.approx(0.5)
    assert result.score == pytest.approx(
        max(m["drop"] for m in d["metrics"].values() if m.get("drop") is not None)
    )
    # the reference data's own accuracy is kept in the profile as a fallback baseline
    assert d["metrics"]["f1"]["reference_source"] == "reference data"


def test_decay_per_segment(world: World) -> None:
    world.settings.checks.segment_column = "channel"
    batch, labels = hand_batch(world, 400)
    labels.loc[batch["channel"] == "web", "label"] = (batch["proba_1"] >= 0.5).astype(int)
    world.ingest(batch)
    service.ingest_labels(
        world.session,
        settings=world.settings,
        model="fraud",
        frame=labels,
        actor=world.admin,
        clock=world.clock,
    )
    segments = run(world).details["segments"]
    assert set(segments) == {"web", "app", "pos"}
    assert segments["web"]["metrics"]["accuracy"]["realised"] == pytest.approx(1.0)
    assert segments["app"]["metrics"]["accuracy"]["realised"] < 0.8
    assert sum(s["rows"] for s in segments.values()) == 400


def test_regression_decay(world: World) -> None:
    register(
        world.session,
        world.admin,
        model="eta",
        task=TaskType.regression,
        metrics={"mae": 1.0, "rmse": 1.5},
    )
    ref = synth.features(2000, 1)
    ref["prediction"] = ref["age"] / 2
    ref["label"] = ref["prediction"] + 1.0
    service.set_reference(
        world.session,
        settings=world.settings,
        model="eta",
        version="1.0.0",
        frame=ref,
        actor=world.admin,
        clock=world.clock,
    )
    dep = deploy(world.session, model="eta", version="1.0.0", environment="production")
    batch = synth.features(200, 2)
    batch.insert(0, "prediction_id", [f"e{i}" for i in range(200)])
    batch.insert(1, "timestamp", [world.window_start() + timedelta(seconds=i) for i in range(200)])
    batch["prediction"] = 10.0
    service.ingest_predictions(
        world.session,
        settings=world.settings,
        model="eta",
        version="1.0.0",
        environment="production",
        frame=batch,
        actor=world.admin,
        clock=world.clock,
    )
    service.ingest_labels(
        world.session,
        settings=world.settings,
        model="eta",
        frame=pd.DataFrame({"prediction_id": batch["prediction_id"], "label": 12.0}),
        actor=world.admin,
        clock=world.clock,
    )
    result = service.run_check(
        world.session,
        settings=world.settings,
        deployment_id=dep,
        kind=CheckKind.decay,
        clock=world.clock,
    )
    d = result.details
    assert d["metrics"]["mae"]["realised"] == pytest.approx(2.0)
    assert d["metrics"]["mae"]["drop"] == pytest.approx(1.0)  # twice the error: 100% worse
    assert d["metrics"]["rmse"]["realised"] == pytest.approx(2.0)
    assert d["metric"] == "mae" and result.status == CheckStatus.fail


def test_no_labels_and_no_probabilities_is_no_data(world: World) -> None:
    batch = synth.predictions(200, 22, world.window_start()).drop(columns=["proba_0", "proba_1"])
    world.ingest(batch)
    result = run(world)
    assert result.status == CheckStatus.no_data
    assert "no probabilities" in result.message
