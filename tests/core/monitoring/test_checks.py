"""Checks over real stored windows: drift on exactly the shifted columns, quality breaks,
no_data for thin windows, errors stored as results."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlmodel import select

from modeldeck.core.monitoring import service
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.monitoring.store import Store
from tests.core.monitoring import synth
from tests.core.monitoring.conftest import World


def run(world: World, kind: CheckKind) -> CheckResult:
    return service.run_check(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        kind=kind,
        clock=world.clock,
    )


def test_drift_is_found_on_exactly_the_shifted_columns(world: World) -> None:
    batch = synth.predictions(
        3000, 7, world.window_start(), shift={"age": 1.0, "score_b": 0.8}, swap={"channel"}
    )
    world.ingest(batch)
    result = run(world, CheckKind.drift)
    columns = result.details["columns"]
    drifted = {name for name, col in columns.items() if col["drifted"]}
    assert drifted == {"age", "score_b", "channel"}
    assert result.details["share_drifted"] == pytest.approx(3 / 6)
    assert result.details["dataset_drift"] is True  # 50% reaches the default drift_share
    assert result.status == CheckStatus.fail
    # evidently's choice for a 4000-row reference: normed Wasserstein / Jensen-Shannon at 0.1
    assert columns["age"]["method"] == "wasserstein" and columns["age"]["threshold"] == 0.1
    assert columns["channel"]["method"] == "jensenshannon"
    assert columns["age"]["reference_rows"] == 4000 and columns["age"]["current_rows"] == 3000
    assert "prediction" in result.details  # prediction drift is reported too
    assert result.reference_hash and result.rows == 3000 and result.id is not None


def test_no_drift_on_fresh_data_from_the_same_distribution(world: World) -> None:
    world.ingest(synth.predictions(3000, 8, world.window_start()))
    result = run(world, CheckKind.drift)
    assert result.status == CheckStatus.ok, result.message
    assert result.details["drifted_count"] == 0
    assert result.details["prediction"]["drifted"] is False


def test_small_windows_use_the_small_sample_tests(world: World) -> None:
    """Under 1000 reference rows evidently switches to K-S / chi-square / Z-test."""
    world.settings.checks.min_rows = 10
    service.set_reference(
        world.session,
        settings=world.settings,
        model="fraud",
        version="1.0.0",
        frame=synth.reference(n=500, seed=3),
        actor=world.admin,
        clock=world.clock,
    )
    world.ingest(synth.predictions(200, 9, world.window_start(), shift={"score_a": 1.0}))
    columns = run(world, CheckKind.drift).details["columns"]
    assert columns["score_a"]["method"] == "ks" and columns["score_a"]["drifted"] is True
    assert columns["country"]["method"] == "chisquare"
    assert columns["age"]["drifted"] is False


def test_quality_break_is_found(world: World) -> None:
    batch = synth.predictions(1000, 10, world.window_start())
    batch.loc[batch.index[:300], "age"] = np.nan  # 30% missing (reference: 0%)
    batch.loc[batch.index[:200], "country"] = "xx"  # a category never seen
    batch.loc[batch.index[:100], "amount"] = 1e6  # far outside the reference range
    world.ingest(batch)
    result = run(world, CheckKind.quality)
    columns = result.details["columns"]
    assert result.status == CheckStatus.fail
    assert columns["age"]["status"] == "fail"
    assert columns["age"]["missing_share"] == pytest.approx(0.3)
    assert columns["country"]["new_categories"] == {"xx": 200}
    assert columns["amount"]["out_of_range_share"] == pytest.approx(0.1)
    assert columns["score_a"]["status"] == "ok" and columns["channel"]["status"] == "ok"
    assert len(result.details["problems"]) == 3


def test_clean_window_passes_quality(world: World) -> None:
    world.ingest(synth.predictions(1000, 11, world.window_start()))
    result = run(world, CheckKind.quality)
    assert result.status == CheckStatus.ok, result.details["problems"]


def test_stuck_feature_and_row_count_warn(world: World) -> None:
    world.settings.checks.expected_rows_per_hour = 5000
    batch = synth.predictions(500, 12, world.window_start())
    batch["channel"] = "web"
    world.ingest(batch)
    result = run(world, CheckKind.quality)
    assert result.status == CheckStatus.warn
    assert result.details["columns"]["channel"]["stuck"] is True
    assert result.details["rows_ratio"] == pytest.approx(0.1)


@pytest.mark.parametrize("kind", [CheckKind.drift, CheckKind.quality, CheckKind.decay])
def test_a_thin_window_is_no_data_not_an_alarm(world: World, kind: CheckKind) -> None:
    world.ingest(synth.predictions(20, 13, world.window_start(), shift={"age": 5.0}))
    result = run(world, kind)
    assert result.status == CheckStatus.no_data
    assert result.rows == 20 and "min_rows" in result.message


def test_an_empty_window_is_no_data(world: World) -> None:
    long_ago = world.window_start() - timedelta(days=2)
    world.ingest(synth.predictions(500, 14, long_ago))
    result = run(world, CheckKind.drift)
    assert result.status == CheckStatus.no_data and result.rows == 0


def test_a_crash_is_stored_as_an_error_result(world: World) -> None:
    world.ingest(synth.predictions(500, 15, world.window_start()))
    store = Store(world.settings.data_dir)
    day = world.window_start().date().isoformat()
    directory = f"{store.predictions_dir('fraud', '1.0.0', 'production')}/date={day}"
    ((_, _, path),) = store.part_files(directory)
    with open(path, "r+b") as handle:  # corrupt the stored file behind the store's back
        handle.seek(40)
        handle.write(b"\x00" * 64)
    results = service.run_checks(
        world.session, settings=world.settings, deployment_id=world.deployment_id, clock=world.clock
    )
    assert [r.status for r in results] == [CheckStatus.error] * 3
    assert all("cannot read" in r.message for r in results)
    assert results[0].details["error"] == results[0].message
    stored = world.session.exec(select(CheckResult)).all()
    assert len(stored) == 3


def test_unknown_deployment_is_not_found(world: World) -> None:
    from modeldeck.core.errors import NotFound

    with pytest.raises(NotFound):
        service.run_check(
            world.session,
            settings=world.settings,
            deployment_id=999,
            kind=CheckKind.drift,
            clock=world.clock,
        )


def test_run_checks_reads_the_window_once_and_stores_three(world: World) -> None:
    world.ingest(synth.predictions(800, 16, world.window_start()))
    seen: list[tuple[str, str | None]] = []
    results = service.run_checks(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        clock=world.clock,
        progress=lambda kind, res: seen.append((kind.value, res.status if res else None)),
    )
    assert [r.kind for r in results] == [CheckKind.drift, CheckKind.quality, CheckKind.decay]
    assert [s for s in seen if s[1] is None] == [
        ("drift", None),
        ("quality", None),
        ("decay", None),
    ]
    listed = service.list_checks(world.session, model="fraud", environment="production")
    assert listed.count == 3 and {c.kind for c in listed.data} == set(CheckKind) - {
        CheckKind.hardware
    }


def test_the_whole_flow_on_both_databases(any_world: World) -> None:
    """Reference profile, results with NaN-free JSON details and the listing query work on
    SQLite and PostgreSQL alike (PostgreSQL refuses NaN in JSON)."""
    world = any_world
    batch = synth.predictions(600, 17, world.window_start(), shift={"score_b": 1.0})
    batch.loc[batch.index[:50], "country"] = "zz"
    world.ingest(batch)
    service.ingest_labels(
        world.session,
        settings=world.settings,
        model="fraud",
        frame=synth.labels_for(batch, 4),
        actor=world.admin,
        clock=world.clock,
    )
    results = service.run_checks(
        world.session, settings=world.settings, deployment_id=world.deployment_id, clock=world.clock
    )
    assert [r.status for r in results] != [CheckStatus.error] * 3, [r.message for r in results]
    assert all(r.status != CheckStatus.error for r in results)
    world.session.expire_all()
    listed = service.list_checks(world.session, model="fraud", kind=CheckKind.drift)
    assert listed.count == 1
    assert listed.data[0].details["columns"]["score_b"]["drifted"] is True
    quality = service.list_checks(world.session, kind=CheckKind.quality).data[0]
    assert quality.details["columns"]["country"]["new_categories"] == {"zz": 50}
    decay = service.list_checks(world.session, kind=CheckKind.decay).data[0]
    assert decay.details["source"] == "realised" and decay.details["labelled_rows"] == 600
