"""Ingestion of predictions and labels into the Parquet store: validate all, then write all.

Ingestion is not audited row by row (it is data, not a change of state); it is counted on
/metrics. Duplicate prediction ids are refused within a batch and against the predictions
already stored for the same model on the same dates — so a retried batch is always caught.
The check and the write hold a per-model lock across processes (`model_lock`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text
from sqlmodel import Session

from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.auth.service import require
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import Conflict
from modeldeck.core.metrics import INGESTED_ROWS
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import frames, labels, reference
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
    names = {"model": model_row.name, "version": version_row.version, "environment": env.name}
    store = Store(settings.data_dir)
    with model_lock(session, store, model_row.name):
        _refuse_stored_ids(store, model_row.name, table)
        files = store.write_partitioned(
            store.predictions_dir(model_row.name, version_row.version, env.name), table, C.TIMESTAMP
        )
    INGESTED_ROWS.labels("predictions").inc(table.num_rows)
    return _result("predictions", table.num_rows, files, started, **names)


@contextmanager
def model_lock(session: Session, store: Store, model: str) -> Iterator[None]:
    """One ingestion of `model` at a time between the duplicate check and the write: a file
    lock on a local store; on another fsspec store a PostgreSQL advisory lock when the
    database is PostgreSQL. On a remote store with SQLite only this process is serialised
    (two writers on different machines could both pass the check; see docs)."""
    with store.lock(model):
        if store.local or session.get_bind().dialect.name != "postgresql":
            yield
            return
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(store, model)})
        try:
            yield
        finally:
            session.rollback()  # ends the transaction, which releases the lock (nothing written)


def lock_key(store: Store, model: str) -> int:
    """A signed 64-bit advisory lock key per store and model."""
    digest = hashlib.blake2b(f"modeldeck.ingest|{store.root}|{model}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


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
    ids = table.column(C.PREDICTION_ID).combine_chunks()
    # Each label records the version and environment of its prediction, so the newest label
    # of a version is found without joining the predictions (labels.last_arrival).
    table = table.join(labels.targets(store, model_row.name, ids), keys=C.PREDICTION_ID)
    files = store.write_partitioned(store.labels_dir(model_row.name), table, C.LABELLED_AT)
    INGESTED_ROWS.labels("labels").inc(table.num_rows)
    return _result("labels", table.num_rows, files, started, model=model_row.name)


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
