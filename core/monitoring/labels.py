"""The label store's side of monitoring: which deployment a label belongs to, and when the
newest label of a version arrived (what `no_labels` alerts on, whatever the window)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modeldeck.core.errors import BackendUnavailable, InvalidInput
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring.store import VERIFY, Store, read_problem


def targets(store: Store, model: str, ids: pa.Array) -> pa.Table:
    """(prediction_id, version, environment) of each id, looked up newest partition first
    (labels usually follow their predictions within days). An id never ingested for the
    model is InvalidInput."""
    missing = ids
    found: list[pa.Table] = []
    for _, directory in store.model_prediction_dirs(model):
        hits = store.stored_ids([directory], missing)
        if len(hits):
            version, environment = _deployment_of(directory)
            found.append(
                pa.table(
                    {
                        C.PREDICTION_ID: hits,
                        C.VERSION: pa.repeat(pa.scalar(version, pa.string()), len(hits)),
                        C.ENVIRONMENT: pa.repeat(pa.scalar(environment, pa.string()), len(hits)),
                    }
                )
            )
            missing = pc.filter(missing, pc.invert(pc.is_in(missing, value_set=hits)))
        if len(missing) == 0:
            return pa.concat_tables(found)
    raise InvalidInput(
        f"{len(missing)} label(s) name prediction ids never ingested for "
        f"{model}: {missing.to_pylist()[:5]}",
        hint="send labels after their predictions; ids are per model",
    )


def _deployment_of(directory: str) -> tuple[str, str]:
    """Version and environment from `…/version=V/environment=E/date=D`."""
    parts = directory.rstrip("/").split("/")
    values = {p.partition("=")[0]: p.partition("=")[2] for p in parts if "=" in p}
    return values.get("version", ""), values.get("environment", "")


def last_arrival(
    store: Store, *, model: str, version: str, environment: str, since: datetime
) -> datetime | None:
    """When the newest label for `model` `version` in `environment` arrived, looking back to
    `since` (None: none since then). Label partitions are by arrival day and file names carry
    their newest arrival, so this reads newest files first and stops at the first hit that no
    older file can beat. Label files written before labels carried their version count for
    every version of the model."""
    for day, directory in reversed(store.day_dirs(store.labels_dir(model))):
        if day < since.date():
            break
        best: datetime | None = None
        files = sorted(store.part_files(directory), key=lambda f: f[1], reverse=True)
        for _, last, path in files:
            if best is not None and best >= last:
                break
            newest = _newest_in(store, path, version, environment)
            if newest is not None and (best is None or newest > best):
                best = newest
        if best is not None:
            return best if best >= since else None
    return None


def _newest_in(store: Store, path: str, version: str, environment: str) -> datetime | None:
    try:
        with store.arrow_fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle, **VERIFY)
            names = set(parquet.schema_arrow.names)
            wanted = [C.LABELLED_AT] + [c for c in (C.VERSION, C.ENVIRONMENT) if c in names]
            table = parquet.read(columns=wanted)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BackendUnavailable(f"cannot read {path}: {read_problem(exc)}") from exc
    stamps = table.column(C.LABELLED_AT)
    if C.VERSION in names and C.ENVIRONMENT in names:
        mask = pc.and_(
            pc.equal(table.column(C.VERSION), version),
            pc.equal(table.column(C.ENVIRONMENT), environment),
        )
        stamps = stamps.filter(pc.fill_null(mask, False))
    newest = pc.max(stamps).as_py()
    return newest.astimezone(UTC) if newest is not None else None
