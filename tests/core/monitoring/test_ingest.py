"""Ingestion through the service: stored whole, refused whole, never half-written."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modeldeck.core.auth.models import Actor
from modeldeck.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from modeldeck.core.monitoring import service
from tests.core.monitoring import synth
from tests.core.monitoring.conftest import World


def stored(world: World) -> list[str]:
    """Every committed data file (and any temporary one left behind) in the store."""
    root = Path(world.settings.data_dir)
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*.parquet") if "reference" not in p.parts
    )


def test_predictions_are_partitioned_by_model_version_environment_and_date(world: World) -> None:
    start = world.clock() - timedelta(hours=2)
    batch = synth.predictions(1000, 1, start, span=timedelta(hours=2))
    batch.loc[0, "timestamp"] = start - timedelta(days=1)  # one row from yesterday
    result = world.ingest(batch)
    assert result.rows == 1000 and len(result.files) == 2
    files = stored(world)
    day, yesterday = start.date().isoformat(), (start - timedelta(days=1)).date().isoformat()
    base = "predictions/model=fraud/version=1.0.0/environment=production"
    assert [f.rsplit("/", 1)[0] for f in files] == [
        f"{base}/date={yesterday}",
        f"{base}/date={day}",
    ]
    table = pq.read_table(Path(world.settings.data_dir) / files[1])
    assert table.num_rows == 999
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("prediction").type == pa.string()  # class labels as text
    assert table.schema.field("age").type == pa.float64()


def test_arrow_tables_and_environment_aliases_are_accepted(world: World) -> None:
    batch = pa.Table.from_pandas(
        synth.predictions(100, 2, world.window_start()), preserve_index=False
    )
    result = world.ingest(batch, environment="prod")
    assert result.environment == "production"


def test_nan_in_a_feature_is_a_missing_value(world: World) -> None:
    batch = synth.predictions(100, 3, world.window_start())
    batch.loc[:9, "age"] = np.nan
    world.ingest(batch)
    (path,) = stored(world)
    table = pq.read_table(Path(world.settings.data_dir) / path)
    assert table.column("age").null_count == 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.drop(columns=["age"]), "missing feature column(s) ['age']"),
        (lambda b: b.assign(extra=1.0), "unknown column(s) ['extra']"),
        (lambda b: b.assign(age="old"), "column 'age': expected numeric values"),
        (lambda b: b.assign(country=3), "column 'country': expected string values"),
        (
            lambda b: b.assign(amount=np.where(b.index == 5, np.inf, b["amount"])),
            "column 'amount': infinite value (row 5",
        ),
        (lambda b: b.assign(proba_1=1.5), "probabilities must be within [0, 1]"),
        (lambda b: b.assign(proba_0=0.9), "must sum to 1"),
        (lambda b: b.assign(proba_maybe=0.1), "probabilities for unknown classes ['maybe']"),
        (lambda b: b.assign(prediction=0.5), "expected class label"),
        (lambda b: b.iloc[0:0], "the batch is empty"),
        (lambda b: b.assign(prediction_id="same"), "appear more than once"),
        (lambda b: b.assign(prediction_id=None), "have no prediction id"),
        (lambda b: b.drop(columns=["timestamp"]), "no 'timestamp' column"),
        (lambda b: b.assign(timestamp=b["timestamp"] + timedelta(days=3)), "in the future"),
        (lambda b: b.assign(model="other"), "column 'model' holds ['other']"),
    ],
)
def test_bad_batches_are_refused_whole(world: World, change: object, message: str) -> None:
    batch = synth.predictions(100, 4, world.window_start())
    with pytest.raises(InvalidInput) as err:
        world.ingest(change(batch))  # type: ignore[operator]
    assert message in str(err.value)
    assert stored(world) == []


def test_nan_probability_in_an_arrow_batch_is_refused(world: World) -> None:
    """pandas means "missing" by NaN (and becomes null); Arrow and JSON can say NaN itself."""
    batch = pa.Table.from_pandas(
        synth.predictions(50, 4, world.window_start()), preserve_index=False
    )
    proba = batch.column("proba_1").to_numpy().copy()
    proba[2] = np.nan
    index = batch.schema.get_field_index("proba_1")
    batch = batch.set_column(index, "proba_1", pa.array(proba, from_pandas=False))
    with pytest.raises(InvalidInput, match=r"NaN is not a probability \(row 2"):
        world.ingest(batch)
    assert stored(world) == []


@pytest.mark.parametrize(
    ("names", "error"),
    [
        ({"model": "nope"}, "no model named 'nope'"),
        ({"version": "9.9.9"}, "has no version '9.9.9'"),
        ({"environment": "moon"}, "no environment named 'moon'"),
    ],
)
def test_unknown_targets_are_not_found(world: World, names: dict[str, str], error: str) -> None:
    with pytest.raises(NotFound, match=error):
        world.ingest(synth.predictions(10, 5, world.window_start()), **names)
    assert stored(world) == []


def test_a_version_without_reference_cannot_ingest(world: World) -> None:
    from tests.core.monitoring.conftest import register

    register(world.session, world.admin, version="2.0.0")
    with pytest.raises(InvalidInput, match="has no reference data"):
        world.ingest(synth.predictions(10, 5, world.window_start()), version="2.0.0")


def test_a_registered_reference_uri_is_profiled_on_first_use(world: World, tmp_path: Path) -> None:
    from modeldeck.core.registry import service as registry
    from modeldeck.core.registry.models import ModelVersionCreate

    path = tmp_path / "ref.csv"
    synth.reference(800, seed=4).to_csv(path, index=False)
    registry.register_version(
        world.session,
        model_name="fraud",
        actor=world.admin,
        data=ModelVersionCreate(version="3.0.0", image="img:3", reference_data_uri=str(path)),
    )
    world.ingest(synth.predictions(50, 6, world.window_start()), version="3.0.0")
    profile = service.get_reference(world.session, model="fraud", version="3.0.0")
    assert profile.rows == 800 and profile.source_uri == str(path)
    assert profile.columns["country"].kind == "cat" and profile.columns["age"].kind == "num"


def test_a_retried_batch_is_a_conflict_and_stores_nothing_more(world: World) -> None:
    batch = synth.predictions(200, 6, world.window_start())
    world.ingest(batch)
    before = stored(world)
    with pytest.raises(Conflict, match="already ingested"):
        world.ingest(batch)
    mixed = pd.concat([batch.iloc[:1], synth.predictions(50, 7, world.window_start(), prefix="q")])
    with pytest.raises(Conflict):
        world.ingest(mixed)
    assert stored(world) == before


def test_viewers_cannot_ingest(world: World, viewer: Actor) -> None:
    with pytest.raises(Forbidden):
        service.ingest_predictions(
            world.session,
            settings=world.settings,
            model="fraud",
            version="1.0.0",
            environment="production",
            frame=synth.predictions(10, 8, world.window_start()),
            actor=viewer,
            clock=world.clock,
        )


def test_labels_join_by_prediction_id_later(world: World) -> None:
    batch = synth.predictions(300, 9, world.window_start())
    world.ingest(batch)
    world.clock.advance(days=2)  # labels arrive days later
    result = service.ingest_labels(
        world.session,
        settings=world.settings,
        model="fraud",
        frame=synth.labels_for(batch, 1),
        actor=world.admin,
        clock=world.clock,
    )
    assert result.rows == 300
    assert any(f.startswith("labels/model=fraud/date=") for f in stored(world))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda b: b.assign(prediction_id=["nope-1"] + list(b["prediction_id"][1:])),
            "name prediction ids never ingested for fraud: ['nope-1']",
        ),
        (lambda b: b.assign(label=None), "have no label"),
        (lambda b: b.assign(label=0.5), "expected class label"),
        (lambda b: b.iloc[0:0], "the batch is empty"),
        (lambda b: b.assign(extra=1), "unknown column(s) in a label batch"),
        (lambda b: pd.concat([b, b.iloc[:1]]), "appear more than once"),
    ],
)
def test_bad_label_batches_are_refused_whole(world: World, change: object, message: str) -> None:
    batch = synth.predictions(100, 10, world.window_start())
    world.ingest(batch)
    before = stored(world)
    with pytest.raises(InvalidInput) as err:
        service.ingest_labels(
            world.session,
            settings=world.settings,
            model="fraud",
            frame=change(synth.labels_for(batch, 2)),  # type: ignore[operator]
            actor=world.admin,
            clock=world.clock,
        )
    assert message in str(err.value)
    assert stored(world) == before


def test_a_failed_rename_leaves_no_file_of_the_batch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second of two renames fails (disk full): the first file is taken back and the
    temporary files are removed, so readers never see part of the batch."""
    from fsspec.implementations.local import LocalFileSystem

    start = world.clock() - timedelta(days=1, hours=1)
    batch = synth.predictions(100, 11, start, span=timedelta(days=1))  # two date partitions
    original = LocalFileSystem.mv
    calls = {"n": 0}

    def flaky_mv(self: LocalFileSystem, path1: str, path2: str, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        original(self, path1, path2, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "mv", flaky_mv)
    with pytest.raises(OSError, match="disk full"):
        world.ingest(batch)
    root = Path(world.settings.data_dir)
    assert calls["n"] == 2
    data = [
        p for p in root.rglob("*") if p.is_file() and not {"reference", ".locks"} & set(p.parts)
    ]
    assert data == []
