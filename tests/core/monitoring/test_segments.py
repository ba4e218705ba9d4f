"""Drift and data quality per segment (CheckConfig.segment_column): a problem in one country
that the whole-window average stays under is reported, fails or warns the check, and is
named by the alert; healthy segments, and segments that differ from the population by
design, flag nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from modeldeck.core.alerts import rules
from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Alert
from modeldeck.core.monitoring import service
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from tests.core.monitoring import synth
from tests.core.monitoring.conftest import World

SPREAD = {"amount": 12.0, "age": 10.0, "score_a": 1.0, "score_b": 0.29}  # as synth shifts


def run(world: World, kind: CheckKind) -> CheckResult:
    return service.run_check(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        kind=kind,
        clock=world.clock,
    )


def evaluate(world: World, result: CheckResult) -> list[Alert]:
    return alerts.evaluate_check(
        world.session, settings=world.settings, result=result, clock=world.clock
    )


def uk_shifted(world: World, columns: dict[str, float], seed: int = 7) -> pd.DataFrame:
    """3000 predictions where only country=uk (~10 %) moves `columns` by that many standard
    deviations: ~0.06 normed Wasserstein on the whole window, under evidently's 0.1."""
    batch = synth.predictions(3000, seed, world.window_start())
    uk = batch["country"] == "uk"
    for name, sigmas in columns.items():
        batch.loc[uk, name] += sigmas * SPREAD[name]
    return batch


def test_one_drifting_segment_warns_though_the_whole_window_does_not(any_world: World) -> None:
    world = any_world
    world.settings.checks.segment_column = "country"
    world.ingest(uk_shifted(world, {"age": 0.6}))
    result = run(world, CheckKind.drift)
    d = result.details
    assert d["drifted_count"] == 0 and not d["prediction"]["drifted"]  # the average passes
    assert result.status == CheckStatus.warn
    [failure] = d["segment_failures"]
    assert failure["segment"] == "country=uk" and failure["status"] == "warn"
    assert [c["column"] for c in failure["drifted_columns"]] == ["age"]
    assert failure["rows"] == d["segments"]["uk"]["rows"] > world.settings.checks.min_rows
    # evidently's test for a 418-row reference, confirmed by a two-sample test at 5 % over
    # 4 segments x (5 features + the prediction); the segment column is not tested in itself
    [age] = failure["drifted_columns"]
    assert age["method"] == "ks" and age["threshold"] == 0.05
    assert age["significance_test"] == "ks" and age["p_value"] < age["p_threshold"]
    assert age["p_threshold"] == 0.05 / (4 * 6) and d["segment_family"] == 24
    assert failure["columns_tested"] == 5
    assert {s["status"] for n, s in d["segments"].items() if n != "uk"} == {"ok"}
    assert "worst segment country=uk (warn): 1 of 5 columns drifted" in result.message
    assert [a for a in evaluate(world, result) if a.rule == rules.DRIFT] == []  # warn only


def test_dataset_drift_in_one_segment_fails_and_the_alert_names_it(world: World) -> None:
    world.settings.checks.segment_column = "country"
    world.ingest(uk_shifted(world, {"age": 0.6, "amount": 0.6, "score_a": 0.6}))
    result = run(world, CheckKind.drift)
    d = result.details
    assert d["dataset_drift"] is False and d["share_drifted"] < d["drift_share"]
    assert result.status == CheckStatus.fail
    failure = d["segment_failures"][0]
    assert failure["segment"] == "country=uk" and failure["dataset_drift"] is True
    assert {c["column"] for c in failure["drifted_columns"]} == {"age", "amount", "score_a"}
    [alert] = [a for a in evaluate(world, result) if a.rule == rules.DRIFT]
    assert alert.summary.startswith(
        "Data drift in fraud 1.0.0 in production in segment country=uk: 60% of columns drifted"
    )
    assert "; top: " in alert.summary and "whole window 0%" in alert.summary
    assert alert.details["segments"] == ["country=uk"]
    assert alert.details["metric"] == "share of drifted columns in segment country=uk"


def test_a_segment_going_null_fails_quality_and_the_alert_names_it(any_world: World) -> None:
    world = any_world
    world.settings.checks.segment_column = "country"
    batch = synth.predictions(3000, 9, world.window_start())
    uk = batch.index[batch["country"] == "uk"]
    holes = int(len(uk) * 0.4)
    batch.loc[uk[:holes], "age"] = np.nan  # ~4 % of the window: under 5 %
    said = f"age: {holes / len(uk):.1%} missing (reference 0.0%, allowed 5.0%)"
    world.ingest(batch)
    result = run(world, CheckKind.quality)
    d = result.details
    assert d["columns"]["age"]["status"] == "ok" and d["problems"] == []
    assert result.status == CheckStatus.fail
    [failure] = d["segment_failures"]
    assert failure["segment"] == "country=uk" and failure["baseline"] == "segment"
    assert failure["problems"] == [said]
    assert f"worst segment country=uk (fail): {said}" in result.message
    [alert] = [a for a in evaluate(world, result) if a.rule == rules.QUALITY]
    window = rules.window_text(result.window_start, result.window_end)
    assert alert.summary == (
        f"Data quality failed in fraud 1.0.0 in production in segment country=uk over {window}: "
        + said
    )
    assert alert.details["segments"] == ["country=uk"]


def test_healthy_segmented_data_flags_nothing(world: World) -> None:
    world.settings.checks.segment_column = "country"
    world.ingest(synth.predictions(3000, 7, world.window_start()))
    for kind in (CheckKind.drift, CheckKind.quality):
        result = run(world, kind)
        assert result.status == CheckStatus.ok, result.message
        assert result.details["segment_failures"] == []
        assert set(result.details["segments"]) == {"de", "fr", "us", "uk"}
        assert {s["status"] for s in result.details["segments"].values()} == {"ok"}
        assert evaluate(world, result) == []


def test_a_segment_that_differs_by_design_is_compared_with_its_own_reference(
    world: World,
) -> None:
    """uk spends more and often has no age, in the reference as in production: that is the
    population's make-up, not drift or breakage. Against the whole reference it would be both
    (its amounts drift by ~1.7 sd, its missing share is 30 %)."""
    world.settings.checks.segment_column = "country"

    def uk_differs(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
        uk = frame.index[frame["country"] == "uk"]
        frame.loc[uk, "amount"] += 20.0
        holes = np.random.default_rng(seed).choice(uk, int(len(uk) * 0.3), replace=False)
        frame.loc[holes, "age"] = np.nan
        return frame

    reference = uk_differs(synth.reference(), 1)
    service.set_reference(
        world.session,
        settings=world.settings,
        model="fraud",
        version="1.0.0",
        frame=reference,
        actor=world.admin,
        clock=world.clock,
    )
    world.ingest(uk_differs(synth.predictions(3000, 7, world.window_start()), 2))
    for kind in (CheckKind.drift, CheckKind.quality):
        result = run(world, kind)
        assert result.status == CheckStatus.ok, result.message
        assert result.details["segment_failures"] == []
    uk = result.details["segments"]["uk"]
    assert uk["baseline"] == "segment" and uk["reference_rows"] == 418


def test_segments_too_small_or_missing_from_the_reference_are_not_judged(world: World) -> None:
    world.settings.checks.segment_column = "country"
    world.settings.checks.min_rows = 400  # uk has ~300 rows in the window: listed, not judged
    world.ingest(uk_shifted(world, {"age": 3.0, "amount": 3.0, "score_a": 3.0}))
    result = run(world, CheckKind.drift)
    assert set(result.details["segments"]) == {"de", "fr", "us"}
    assert list(result.details["segments_too_small"]) == ["uk"]
    assert result.details["segments_too_small"]["uk"] < 400
    assert result.details["segment_failures"] == []

    # A value the reference has (almost) no rows of cannot be compared with itself; the whole
    # reference would measure its difference from the population, so it is not tested.
    world.settings.checks.min_rows = 30
    reference = synth.reference()
    reference = reference[(reference["country"] != "uk") | (reference.index < 100)]
    service.set_reference(
        world.session,
        settings=world.settings,
        model="fraud",
        version="1.0.0",
        frame=reference,
        actor=world.admin,
        clock=world.clock,
    )
    uk = run(world, CheckKind.drift).details["segments"]["uk"]
    assert uk["status"] == "no_data" and uk["reference_rows"] < 30
    assert "not tested: the reference has" in uk["note"]


def test_without_a_segment_column_nothing_changes(world: World) -> None:
    world.ingest(uk_shifted(world, {"age": 0.6}))
    for kind in (CheckKind.drift, CheckKind.quality):
        result = run(world, kind)
        assert result.status == CheckStatus.ok, result.message  # the average hides uk
        assert not {"segments", "segment_failures", "segment_column"} & set(result.details)


def test_a_segment_column_that_is_no_feature_is_reported(world: World) -> None:
    world.settings.checks.segment_column = "region"
    world.ingest(synth.predictions(300, 7, world.window_start()))
    for kind in (CheckKind.drift, CheckKind.quality):
        result = run(world, kind)
        assert result.details["segment_error"] == "segment column 'region' is not a feature"


def test_evidentlys_verdicts_in_segments_need_a_two_sample_test_to_agree(world: World) -> None:
    """With a 2000-row reference each country's reference is at most 1000 rows, so evidently
    picks K-S and chi-square; its chi-square takes the reference counts as the truth and on
    this healthy sample flags `channel` in three countries (and de's prediction), the K-S
    uk's score_b at 5 %. Across 24 tests that is noise: two-sample tests at 5 % / 24 do not
    agree, and nothing is flagged."""
    world.settings.checks.segment_column = "country"
    service.set_reference(
        world.session,
        settings=world.settings,
        model="fraud",
        version="1.0.0",
        frame=synth.reference(2000, 2),
        actor=world.admin,
        clock=world.clock,
    )
    world.ingest(synth.predictions(3000, 7, world.window_start()))
    result = run(world, CheckKind.drift)
    assert result.status == CheckStatus.ok, result.message
    segments = result.details["segments"]
    assert {n: sorted(s["not_significant"]) for n, s in segments.items()} == {
        "de": ["channel", "prediction"],
        "fr": [],
        "us": ["channel"],
        "uk": ["channel", "score_b"],
    }
    channel = segments["de"]["not_significant"]["channel"]
    assert channel["method"] == "chisquare" and channel["score"] < channel["threshold"] == 0.05
    assert channel["significance_test"] == "chi2_contingency"
    assert channel["p_value"] >= channel["p_threshold"] == 0.05 / 24
