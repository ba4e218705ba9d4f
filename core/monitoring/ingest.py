"""Ingestion of predictions and labels into the Parquet store: validate all, then write all.

Ingestion is not audited row by row (it is data, not a change of state); it is counted on
/metrics. Duplicate prediction ids are refused within a batch and against the predictions
already stored for the same model on the same dates — so a retried batch is always caught.
"""

from __future__ import annotations

import time

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlmodel import Session

from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.auth.service import require
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import Conflict, InvalidInput
from modeldeck.core.metrics import INGESTED_ROWS
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import frames, reference
from modeldeck.core.monitoring.models import IngestResult
from modeldeck.core.monitoring.store import Store, utc_days
from modeldeck.core.registry import service as registry


def ingest_predictions(
    session: Session,
    *,
    settings: Settings,
    model: str,
    version: str,
    environment: str,
    frame: pa.Table | pd.DataFrame,
    actor: Actor,
    clock: Clock = utcnow,
) -> IngestResult:
    """Store a batch of predictions of one version in one environment, all or nothing."""
    started = time.perf_counter()
    require(actor, Role.deployer, "ingest predictions")
    model_row = registry.get_model(session, model)
    version_row = registry.get_version(session, model_row, version)
    env = environments.get(session, environments.resolve_name(settings, environment))
    profile = reference.ensure_profile(
        session, settings=settings, model=model_row, version=version_row, clock=clock
    )
    raw = frames.drop_meta(
        frames.to_arrow(frame),
        {"model": model_row.name, "version": version_row.version, "environment": env.name},
    )
    table = frames.predictions_table(
        raw, profile=profile, task_type=str(model_row.task_type), now=clock()
    )
    store = Store(settings.data_dir)
    with store.lock(model_row.name):
        _refuse_stored_ids(store, model_row.name, table)
        files = store.write_partitioned(
            store.predictions_dir(model_row.name, version_row.version, env.name), table, C.TIMESTAMP
        )
    INGESTED_ROWS.labels("predictions").inc(table.num_rows)
    return _result(
        "predictions",
        table.num_rows,
        files,
        started,
        model=model_row.name,
        version=version_row.version,
        environment=env.name,
    )


def _refuse_stored_ids(store: Store, model: str, table: pa.Table) -> None:
    days = set(pc.unique(utc_days(table.column(C.TIMESTAMP))).to_pylist())
    directories = [d for day, d in store.model_prediction_dirs(model) if day in days]
    ids = table.column(C.PREDICTION_ID).combine_chunks()
    dupes = store.stored_ids(directories, ids)
    if len(dupes):
        raise Conflict(
            f"{len(dupes)} prediction id(s) were already ingested for {model}: "
            f"{dupes.to_pylist()[:5]}",
            hint="prediction ids are unique per model; was this batch sent twice?",
        )


def ingest_labels(
    session: Session,
    *,
    settings: Settings,
    model: str,
    frame: pa.Table | pd.DataFrame,
    actor: Actor,
    clock: Clock = utcnow,
) -> IngestResult:
    """Store ground truth by prediction id; every id must name a stored prediction. A later
    label for the same id replaces the earlier one (corrections happen)."""
    started = time.perf_counter()
    require(actor, Role.deployer, "ingest labels")
    model_row = registry.get_model(session, model)
    raw = frames.drop_meta(frames.to_arrow(frame), {"model": model_row.name})
    table = frames.labels_table(raw, task_type=str(model_row.task_type), now=clock())
    store = Store(settings.data_dir)
    _refuse_unknown_ids(store, model_row.name, table.column(C.PREDICTION_ID).combine_chunks())
    files = store.write_partitioned(store.labels_dir(model_row.name), table, C.LABELLED_AT)
    INGESTED_ROWS.labels("labels").inc(table.num_rows)
    return _result("labels", table.num_rows, files, started, model=model_row.name)


def _refuse_unknown_ids(store: Store, model: str, ids: pa.Array) -> None:
    """Look the ids up newest partition first and stop once all are found (labels usually
    follow their predictions within days)."""
    missing = ids
    for _, directory in store.model_prediction_dirs(model):
        found = store.stored_ids([directory], missing)
        if len(found):
            missing = pc.filter(missing, pc.invert(pc.is_in(missing, value_set=found)))
        if len(missing) == 0:
            return
    raise InvalidInput(
        f"{len(missing)} label(s) name prediction ids never ingested for "
        f"{model}: {missing.to_pylist()[:5]}",
        hint="send labels after their predictions; ids are per model",
    )


def _result(kind: str, rows: int, files: list[str], started: float, **names: str) -> IngestResult:
    elapsed = time.perf_counter() - started
    return IngestResult(
        kind=kind,
        rows=rows,
        files=files,
        duration_ms=int(elapsed * 1000),
        rows_per_second=rows / elapsed if elapsed > 0 else float(rows),
        **names,
    )
