"""Reference data (validated, profiled once, audited) and evidently reports on request."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlmodel import select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor
from modeldeck.core.errors import Forbidden, InvalidInput, NotFound
from modeldeck.core.monitoring import reports, service
from modeldeck.core.monitoring.models import CheckKind, CheckStatus, ReferenceProfile
from modeldeck.core.registry import service as registry
from tests.core.monitoring import synth
from tests.core.monitoring.conftest import World


def set_ref(world: World, frame: object, actor: Actor | None = None, **kwargs: object) -> object:
    return service.set_reference(
        world.session,
        settings=world.settings,
        model="fraud",
        version="1.0.0",
        frame=frame,  # type: ignore[arg-type]
        actor=actor or world.admin,
        clock=world.clock,
        **kwargs,
    )


def test_profile_records_types_categories_ranges_and_reference_performance(world: World) -> None:
    profile = service.get_reference(world.session, model="fraud", version="1.0.0")
    cols = profile.columns
    assert cols["country"].kind == "cat" and cols["country"].categories == ["de", "fr", "uk", "us"]
    assert cols["age"].kind == "num" and cols["age"].min is not None
    assert cols["prediction"].role == "prediction" and cols["proba_1"].role == "proba"
    assert profile.task == {
        "type": "classification",
        "classes": ["0", "1"],
        "positive": "1",
        "proba_classes": ["0", "1"],
    }
    assert 0.6 < profile.metrics["realised"]["accuracy"] < 0.9
    assert profile.metrics["calibration"]["calibrated"] is True  # labels drawn from p
    assert len(profile.hash) == 64 and profile.rows == 4000
    version = registry.get_version(
        world.session, registry.get_model(world.session, "fraud"), "1.0.0"
    )
    assert version.reference_data_uri == profile.data_uri


def test_setting_a_reference_is_audited_and_replaces_the_profile(world: World) -> None:
    before = service.get_reference(world.session, model="fraud", version="1.0.0").hash
    after = set_ref(world, synth.reference(1000, seed=2))
    events = world.session.exec(
        select(AuditEvent).where(AuditEvent.action == "version.reference")
    ).all()
    assert len(events) == 2
    assert events[-1].before is not None and events[-1].before["sha256"] == before
    assert events[-1].after is not None
    assert events[-1].after["sha256"] == after.hash  # type: ignore[attr-defined]
    assert len(world.session.exec(select(ReferenceProfile)).all()) == 1


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (synth.reference(10).iloc[0:0], "the reference data is empty"),
        (synth.reference(10)[["prediction", "label"]], "has no feature columns"),
        (synth.reference(10).assign(age=np.nan), "reference column 'age' has no values"),
        (pa.table({"tags": pa.array([["a"], ["b"]])}), "column 'tags': unsupported type"),
        (
            synth.reference(10).drop(columns=["proba_0"]).assign(proba_2=0.0),
            "label values ['0'] have no probability column",
        ),
        (synth.reference(10).assign(proba_1=2.0), "probabilities must be within [0, 1]"),
        (synth.reference(10).assign(age=np.inf), "column 'age': infinite value"),
        (synth.reference(10).assign(label=0.5), "expected class label"),
    ],
)
def test_bad_reference_data_is_refused_and_nothing_changes(
    world: World, frame: object, message: str
) -> None:
    before = service.get_reference(world.session, model="fraud", version="1.0.0").hash
    with pytest.raises(InvalidInput) as err:
        set_ref(world, frame)
    assert message in str(err.value)
    assert service.get_reference(world.session, model="fraud", version="1.0.0").hash == before


def test_reference_needs_a_deployer_and_a_known_version(world: World, viewer: Actor) -> None:
    with pytest.raises(Forbidden):
        set_ref(world, synth.reference(50), actor=viewer)
    with pytest.raises(NotFound):
        service.set_reference(
            world.session,
            settings=world.settings,
            model="fraud",
            version="0.0.1",
            frame=synth.reference(50),
            actor=world.admin,
            clock=world.clock,
        )
    with pytest.raises(InvalidInput, match="not in the reference"):
        set_ref(world, synth.reference(50), column_types={"nope": "cat"})


def test_reports_per_kind_from_the_stored_window(world: World) -> None:
    batch = synth.predictions(600, 51, world.window_start(), shift={"age": 1.0})
    world.ingest(batch)
    service.ingest_labels(
        world.session,
        settings=world.settings,
        model="fraud",
        frame=synth.labels_for(batch, 5),
        actor=world.admin,
        clock=world.clock,
    )
    results = {
        r.kind: r
        for r in service.run_checks(
            world.session,
            settings=world.settings,
            deployment_id=world.deployment_id,
            clock=world.clock,
        )
    }
    for kind, marker in (
        (CheckKind.drift, "Drift"),
        (CheckKind.quality, "Missing"),
        (CheckKind.decay, "Accuracy"),
    ):
        result_id = results[kind].id
        assert result_id is not None
        text = reports.html(world.session, settings=world.settings, check_id=result_id)
        assert marker in text, kind


def test_decay_report_needs_labels_and_errors_have_no_report(world: World) -> None:
    world.ingest(synth.predictions(300, 52, world.window_start()))
    decay = service.run_check(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        kind=CheckKind.decay,
        clock=world.clock,
    )
    assert decay.id is not None
    with pytest.raises(NotFound, match="no labelled predictions"):
        reports.html(world.session, settings=world.settings, check_id=decay.id)
    world.clock.advance(days=30)  # an empty window
    empty = service.run_check(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        kind=CheckKind.drift,
        clock=world.clock,
    )
    assert empty.status == CheckStatus.no_data and empty.id is not None
    with pytest.raises(NotFound, match="no predictions"):
        reports.html(world.session, settings=world.settings, check_id=empty.id)


def test_an_old_check_reports_on_the_reference_it_used(world: World) -> None:
    world.ingest(synth.predictions(400, 53, world.window_start()))
    old = service.run_check(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        kind=CheckKind.drift,
        clock=world.clock,
    )
    replacement = synth.reference(1500, seed=8)
    replacement["age"] = replacement["age"] + 100  # nothing like the old reference
    set_ref(world, replacement)
    assert old.id is not None
    text = reports.html(world.session, settings=world.settings, check_id=old.id)
    assert "Drift" in text
    from modeldeck.core.monitoring.window import load

    window = load(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        window_end=old.window_end,
        clock=world.clock,
        reference_hash=old.reference_hash,
    )
    assert window.profile is not None and window.profile.hash == old.reference_hash
    assert window.profile.rows == 4000


def test_stored_data_of_another_type_counts_as_type_mismatches(world: World) -> None:
    world.ingest(synth.predictions(200, 54, world.window_start()))
    replacement = synth.reference(2000, seed=9)
    replacement["channel"] = np.random.default_rng(1).integers(0, 3, 2000)  # now integers
    set_ref(world, replacement)
    result = service.run_check(
        world.session,
        settings=world.settings,
        deployment_id=world.deployment_id,
        kind=CheckKind.quality,
        clock=world.clock,
    )
    channel = result.details["columns"]["channel"]
    assert channel["type_mismatches"] == 200 and channel["status"] == "fail"
    assert result.status == CheckStatus.fail


def test_pandas_categoricals_and_booleans_are_accepted(world: World) -> None:
    ref = synth.reference(300, seed=10)
    ref["country"] = ref["country"].astype("category")
    ref["vip"] = ref["age"] > 45
    profile = set_ref(world, ref)
    assert profile.columns["vip"].kind == "cat"  # type: ignore[attr-defined]
    batch = synth.predictions(50, 55, world.window_start())
    batch["vip"] = pd.array([True, False, None] * 16 + [True, False], dtype="boolean")
    world.ingest(batch)
