"""Labels that arrive late: coverage before judging on them, the catch-up of past windows,
`no_labels` on the newest arrival, and segments that the average would hide."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlmodel import select

import modeldeck.core.monitoring.jobs  # noqa: F401  (registers the catch-up job)
from modeldeck.core import scheduler
from modeldeck.core.alerts import rules
from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Alert, AlertStatus
from modeldeck.core.config import CheckConfig, Settings
from modeldeck.core.monitoring import catchup, labels, readings, service
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.monitoring.store import Store
from modeldeck.core.rollouts.models import Deployment
from tests.core.monitoring import synth
from tests.core.monitoring.conftest import World


def hand_batch(world: World, n: int, prefix: str = "p") -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n` predictions with p(1) cycling .9 .8 .3 .2 and truth 1 0 0 1: estimated accuracy
    0.8 (the registered reference), realised 0.5."""
    batch = synth.predictions(n, 21, world.window_start(), prefix=prefix)
    p = np.tile([0.9, 0.8, 0.3, 0.2], n // 4)
    batch["proba_1"], batch["proba_0"] = p, 1 - p
    batch["prediction"] = (p >= 0.5).astype(int)
    truth = pd.DataFrame(
        {"prediction_id": batch["prediction_id"], "label": np.tile([1, 0, 0, 1], n // 4)}
    )
    return batch, truth


def ingest_labels(world: World, frame: pd.DataFrame) -> None:
    service.ingest_labels(
        world.session,
        settings=world.settings,
        model="fraud",
        frame=frame,
        actor=world.admin,
        clock=world.clock,
    )


def decay(world: World) -> CheckResult:
    """The decay check of the window ending now, as the scheduler runs it."""
    return service.run_check(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        kind=CheckKind.decay,
        clock=world.clock,
    )


def evaluate(world: World, result: CheckResult, settings: Settings | None = None) -> list[Alert]:
    return alerts.evaluate_check(
        world.session, settings=settings or world.settings, result=result, clock=world.clock
    )


def job_context(world: World) -> scheduler.JobContext:
    return scheduler.JobContext(
        engine=world.session.get_bind(),  # type: ignore[arg-type]
        settings=world.settings,
        clock=world.clock,
    )


# --- 3. coverage ----------------------------------------------------------------------------


def test_early_labels_below_the_minimum_coverage_judge_on_the_estimate(world: World) -> None:
    """A quarter of the window labelled early (the churners, say) is not the window."""
    batch, truth = hand_batch(world, 400)
    world.ingest(batch)
    ingest_labels(world, truth.iloc[:100])
    d = decay(world).details
    assert d["source"] == "estimated"  # not the 100 labelled rows, though >= min_rows
    assert d["labelled_rows"] == 100 and d["label_coverage"] == 0.25
    assert d["min_label_coverage"] == 0.5
    assert d["metrics"]["accuracy"]["realised"] == pytest.approx(0.5)  # shown, not judged
    assert d["metrics"]["accuracy"]["estimated"] == pytest.approx(0.8)
    assert "labels cover 25% of the window, below min_label_coverage 50%" in d["coverage_note"]
    world.settings.checks.min_label_coverage = 0.2  # per model in production configs
    assert decay(world).details["source"] == "realised"


# --- 1. catch-up ----------------------------------------------------------------------------


def test_labels_after_the_check_are_caught_up_beside_the_estimate(world: World) -> None:
    assert "modeldeck.core.monitoring.jobs" in scheduler.HOOK_MODULES
    job = scheduler.registered_jobs()["monitoring.label-catchup"]
    batch, truth = hand_batch(world, 400)
    world.ingest(batch)
    first = decay(world)  # labels come days later
    assert first.details["source"] == "estimated"
    verdict = str(first.status)

    world.clock.advance(days=3)
    ingest_labels(world, truth)
    world.settings.checks.label_catchup_days = 2  # the window is older than the bound
    assert job.func(job_context(world)) == []
    world.settings.checks.label_catchup_days = 7
    updated = job.func(job_context(world))
    assert [r.id for r in updated] == [first.id]

    world.session.expire_all()
    stored = world.session.get(CheckResult, first.id)
    assert stored is not None
    d = stored.details
    assert d["source"] == "realised" and d["labelled_rows"] == 400
    assert d["metrics"]["accuracy"]["realised"] == pytest.approx(0.5)
    assert d["metrics"]["accuracy"]["estimated"] == pytest.approx(0.8)  # beside it
    assert d["estimate"]["source"] == "estimated" and d["estimate"]["status"] == verdict
    assert d["caught_up_at"] == world.clock().isoformat()
    assert stored.status == CheckStatus.fail and stored.window_end == first.window_end
    assert "labels arrived after the check" in stored.message
    assert len(world.session.exec(select(CheckResult)).all()) == 1  # updated, not added

    # The dashboard reads the realised value beside the estimate from the same result.
    values = readings.metrics(d, at=world.clock(), version="1.0.0", check_id=stored.id or 0)
    overall = {r.source: r.value for r in values if r.metric == "accuracy"}  # no segments here
    assert overall == {"realised": pytest.approx(0.5), "estimated": pytest.approx(0.8)}

    # The late verdict alerts under its own key, beside the current window's alert.
    [alert] = world.session.exec(select(Alert).where(Alert.rule == rules.DECAY)).all()
    assert alert.key == "realised" and alert.status == AlertStatus.firing
    assert "(realised)" in alert.summary and "labels arrived after the check" in alert.summary
    assert job.func(job_context(world)) == []  # nothing left to catch up


def test_catch_up_waits_until_enough_of_the_window_is_labelled(world: World) -> None:
    batch, truth = hand_batch(world, 400)
    world.ingest(batch)
    first = decay(world)
    world.clock.advance(days=1)
    ingest_labels(world, truth.iloc[:150])  # 37.5%: not yet
    assert catchup.catch_up(world.session, settings=world.settings, clock=world.clock) == []
    world.clock.advance(days=1)
    ingest_labels(world, truth.iloc[150:])
    [updated] = catchup.catch_up(world.session, settings=world.settings, clock=world.clock)
    assert updated.id == first.id and updated.details["label_coverage"] == 1.0


# --- 2. no_labels on the newest arrival -----------------------------------------------------


def test_newest_label_arrival_is_per_version_and_environment(world: World) -> None:
    prod = synth.predictions(50, 51, world.window_start(), prefix="prod")
    stg = synth.predictions(50, 52, world.window_start(), prefix="stg")
    world.ingest(prod)
    world.ingest(stg, environment="staging")
    ingest_labels(world, synth.labels_for(stg, 1))
    store = Store(world.settings.data_dir)
    since = world.clock() - timedelta(days=1)
    found = {
        env: labels.last_arrival(
            store, model="fraud", version="1.0.0", environment=env, since=since
        )
        for env in ("production", "staging")
    }
    assert found == {"production": None, "staging": world.clock()}


def test_labels_that_lag_the_window_but_keep_arriving_do_not_alert(world: World) -> None:
    """Labels come two days after their predictions, so no window ever holds one; `no_labels`
    follows the newest arrival: quiet while they arrive, fires when they stop, resolves when
    they come back."""
    deployment = world.session.get(Deployment, world.deployment_id)
    assert deployment is not None
    deployment.activated_at = world.window_start()  # live since the first predictions
    world.session.commit()
    old = synth.predictions(300, 53, world.window_start(), prefix="old")
    world.ingest(old)
    truth = synth.labels_for(old, 2)

    def hour(tag: str, label_rows: slice | None) -> list[Alert]:
        world.ingest(synth.predictions(100, ord(tag), world.window_start(), prefix=tag))
        if label_rows is not None:
            ingest_labels(world, truth.iloc[label_rows])
        result = decay(world)
        assert result.details["labelled_rows"] == 0  # nothing in the window is labelled
        return [a for a in evaluate(world, result) if a.rule == rules.NO_LABELS]

    world.clock.advance(days=2)
    assert hour("a", slice(0, 100)) == []
    world.clock.advance(hours=7)
    assert hour("b", slice(100, 200)) == []  # 7 h without a labelled window: still healthy
    arrived = world.clock()
    world.clock.advance(hours=7)
    quiet = CheckConfig(no_labels_hours=24)  # labels after a day are normal for this model
    patient = world.settings.model_copy(update={"model_checks": {"fraud": quiet}})
    world.ingest(synth.predictions(100, 54, world.window_start(), prefix="c"))
    silent = decay(world)
    assert [a for a in evaluate(world, silent, patient) if a.rule == rules.NO_LABELS] == []
    [alert] = [a for a in evaluate(world, silent) if a.rule == rules.NO_LABELS]
    assert alert.summary == (
        f"No labels for fraud 1.0.0 in production since {arrived:%Y-%m-%d %H:%M} UTC "
        "(7.0 h; alert after 6 h)"
    )
    world.clock.advance(hours=1)
    [resolved] = hour("d", slice(200, 300))
    assert resolved.id == alert.id and resolved.status == AlertStatus.resolved


# --- 4. segments ----------------------------------------------------------------------------


def test_a_failing_segment_fails_the_check_and_the_alert_names_it(world: World) -> None:
    world.settings.checks.segment_column = "country"
    batch = synth.predictions(800, 55, world.window_start())
    truth = pd.DataFrame({"prediction_id": batch["prediction_id"], "label": batch["prediction"]})
    uk = batch["country"] == "uk"  # ~10%: every answer there is wrong
    truth.loc[uk, "label"] = 1 - batch.loc[uk, "prediction"]
    world.ingest(batch)
    ingest_labels(world, truth)

    result = decay(world)
    d = result.details
    assert d["source"] == "realised" and d["status"] == "ok"  # the average passes
    assert d["metrics"]["accuracy"]["realised"] == pytest.approx(1 - uk.mean())
    assert result.status == CheckStatus.fail
    [failure] = [f for f in d["segment_failures"] if f["status"] == "fail"]
    assert failure["segment"] == "country=uk" and failure["rows"] == int(uk.sum())
    assert "worst segment country=uk" in result.message
    [alert] = [a for a in evaluate(world, result) if a.rule == rules.DECAY]
    assert "segment country=uk" in alert.summary
    assert alert.details["segments"] == ["country=uk"]

    # A segment smaller than min_rows is reported but cannot fail the check.
    world.settings.checks.min_rows = int(uk.sum()) + 1
    small = decay(world)
    assert small.status == CheckStatus.ok and small.details["segment_failures"] == []
    assert small.details["segments"]["uk"]["status"] == "fail"
