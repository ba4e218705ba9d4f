"""Incoming batches (JSON, Parquet, Arrow, CSV, pandas) → validated tables in storage form.

Everything is checked before anything is written: a batch is stored whole or not at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modeldeck.core.errors import InvalidInput
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring.models import LabelBatch, PredictionBatch
from modeldeck.core.monitoring.profile import Profile
from modeldeck.core.monitoring.store import VERIFY, read_problem

MAX_FUTURE = timedelta(days=1)
PROBA_SUM_TOLERANCE = 0.01


def to_arrow(frame: pa.Table | pd.DataFrame) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pd.DataFrame):
        try:
            return pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInput(f"the data frame cannot be converted: {exc}") from None
    raise InvalidInput(f"expected a pyarrow Table or pandas DataFrame, got {type(frame).__name__}")


def read_upload(data: bytes, content_type: str | None = None) -> pa.Table:
    """A Parquet, Arrow (file or stream) or CSV upload as a table; anything else is 422."""
    import pyarrow.csv as pacsv
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    if not data:
        raise InvalidInput("the upload is empty")
    kind = (content_type or "").split(";")[0].strip().lower()
    buffer = pa.BufferReader(data)
    try:
        if data[:4] == b"PAR1":  # pages with a checksum are verified (store.VERIFY)
            return pq.read_table(buffer, **VERIFY)
        if data[:6] == b"ARROW1":
            return ipc.open_file(buffer).read_all()
        if "arrow" in kind:
            return ipc.open_stream(buffer).read_all()
        if "csv" in kind:
            return pacsv.read_csv(buffer)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        corrupt = read_problem(exc) != str(exc)
        raise InvalidInput(
            f"the upload is not a readable {_format(data, kind)} file: {read_problem(exc)}",
            hint="it was damaged on the way or on disk: send it again from its source"
            if corrupt
            else "send Parquet, Arrow IPC or CSV",
        ) from None
    raise InvalidInput(
        f"unrecognised upload format (content type {kind or 'none'})",
        hint="send Parquet (application/vnd.apache.parquet), Arrow IPC "
        "(application/vnd.apache.arrow.file or .stream) or text/csv",
    )


def _format(data: bytes, kind: str) -> str:
    if data[:4] == b"PAR1":
        return "Parquet"
    if data[:6] == b"ARROW1" or "arrow" in kind:
        return "Arrow"
    return "CSV"


def prediction_batch_table(batch: PredictionBatch) -> pa.Table:
    """The JSON batch in the flat form of an upload: one column per feature and class."""
    records = batch.predictions
    names = list(records[0].features)
    expected = set(names)
    for row, record in enumerate(records):
        if record.features.keys() != expected:
            missing = sorted(expected - record.features.keys())
            extra = sorted(record.features.keys() - expected)
            raise InvalidInput(
                f"predictions[{row}].features: "
                + (f"missing {missing} " if missing else "")
                + (f"unexpected {extra}" if extra else "")
                + f" (record 0 has {sorted(expected)})",
                hint="every record needs the same features; send null for a missing value",
            )
    C.check_names(names, "feature")
    classes = sorted({c for r in records if r.probabilities for c in r.probabilities})
    columns: dict[str, Any] = {
        C.PREDICTION_ID: pa.array([r.prediction_id for r in records], pa.string()),
        C.TIMESTAMP: pa.array([r.timestamp for r in records]),
        C.PREDICTION: C.python_values([r.prediction for r in records], C.PREDICTION),
    }
    for cls in classes:
        columns[C.PROBA_PREFIX + cls] = C.python_values(
            [r.probabilities.get(cls) if r.probabilities else None for r in records],
            C.PROBA_PREFIX + cls,
        )
    for name in names:
        if name in columns:
            raise InvalidInput(f"feature name {name!r} is reserved")
        columns[name] = C.python_values([r.features[name] for r in records], name)
    return pa.table(columns)


def label_batch_table(batch: LabelBatch) -> pa.Table:
    return pa.table(
        {
            C.PREDICTION_ID: pa.array([r.prediction_id for r in batch.labels], pa.string()),
            C.LABEL: C.python_values([r.label for r in batch.labels], C.LABEL),
        }
    )


def drop_meta(table: pa.Table, expected: dict[str, str]) -> pa.Table:
    """A file may carry model/version/environment columns; they must name the target."""
    for name, value in expected.items():
        if name not in table.column_names:
            continue
        found = set(pc.unique(table.column(name).cast(pa.string())).to_pylist())
        if found != {value}:
            raise InvalidInput(
                f"column {name!r} holds {sorted(map(str, found))[:5]} but the "
                f"batch is for {name} {value!r}"
            )
        table = table.drop_columns([name])
    stray = [m for m in C.META if m in table.column_names]
    return table.drop_columns(stray)


def prediction_ids(table: pa.Table) -> pa.ChunkedArray:
    if C.PREDICTION_ID not in table.column_names:
        raise InvalidInput(f"the batch has no {C.PREDICTION_ID!r} column")
    ids = table.column(C.PREDICTION_ID)
    if not (
        pa.types.is_string(ids.type)
        or pa.types.is_large_string(ids.type)
        or pa.types.is_integer(ids.type)
        or pa.types.is_null(ids.type)
    ):
        raise InvalidInput(
            f"column {C.PREDICTION_ID!r}: expected strings or integers, got {ids.type}"
        )
    ids = ids.cast(pa.string())
    if ids.null_count:
        raise InvalidInput(
            f"{ids.null_count} row(s) have no prediction id{C.first_bad(ids, pc.is_null(ids))}"
        )
    lengths = pc.utf8_length(ids)
    bad = pc.or_(pc.equal(lengths, 0), pc.greater(lengths, C.MAX_NAME))
    if pc.any(bad).as_py():
        raise InvalidInput(
            f"prediction ids must be 1-{C.MAX_NAME} characters{C.first_bad(ids, bad)}"
        )
    counts = pc.value_counts(ids)
    dupes = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(dupes):
        raise InvalidInput(
            f"{len(dupes)} prediction id(s) appear more than once in the batch: "
            f"{dupes.to_pylist()[:5]}"
        )
    return ids


def predictions_table(
    raw: pa.Table, *, profile: Profile, task_type: str, now: datetime
) -> pa.Table:
    """Validate a prediction batch against the version's reference profile and return it in
    storage form (reference types, UTC timestamps, NaN as null)."""
    if raw.num_rows == 0:
        raise InvalidInput("the batch is empty", hint="send at least one prediction")
    for required in (C.PREDICTION_ID, C.TIMESTAMP, C.PREDICTION):
        if required not in raw.column_names:
            raise InvalidInput(f"the batch has no {required!r} column")
    out: dict[str, pa.ChunkedArray] = {C.PREDICTION_ID: prediction_ids(raw)}
    stamps = C.to_timestamps(C.TIMESTAMP, raw.column(C.TIMESTAMP))
    if stamps.null_count:
        raise InvalidInput(f"{stamps.null_count} row(s) have no timestamp")
    late = pc.greater(stamps, pa.scalar(now + MAX_FUTURE, C.UTC_US))
    if pc.any(late).as_py():
        raise InvalidInput(
            f"timestamps more than a day in the future{C.first_bad(stamps, late)}",
            hint="timestamps are the time of the prediction, in UTC",
        )
    out[C.TIMESTAMP] = stamps
    out[C.PREDICTION] = _predictions(raw.column(C.PREDICTION), task_type)
    probas = [n for n in raw.column_names if n.startswith(C.PROBA_PREFIX)]
    out.update(_probabilities(raw, probas, profile))
    features = [n for n in raw.column_names if n not in out and n not in C.RESERVED]
    _same_features(features, profile)
    for name in features:
        out[name] = C.conform(name, raw.column(name), profile.columns[name].dtype)
    return pa.table(out)


def _predictions(arr: pa.ChunkedArray, task_type: str) -> pa.ChunkedArray:
    if task_type == "regression":
        return C.to_numbers(C.PREDICTION, arr, allow_null=False)
    labels = C.to_class_labels(C.PREDICTION, arr)
    if labels.null_count:
        raise InvalidInput(
            f"{labels.null_count} row(s) have no prediction"
            f"{C.first_bad(labels, pc.is_null(labels))}"
        )
    return labels


def _probabilities(raw: pa.Table, names: list[str], profile: Profile) -> dict[str, Any]:
    if not names:
        return {}
    known = set(profile.task.classes)
    strangers = sorted(C.proba_class(n) for n in names if known and C.proba_class(n) not in known)
    if strangers:
        raise InvalidInput(
            f"probabilities for unknown classes {strangers[:5]}",
            hint=f"the reference knows the classes {sorted(known)}",
        )
    out = {}
    for name in names:
        arr = raw.column(name)
        if pa.types.is_floating(arr.type) and pc.any(pc.is_nan(arr)).as_py():
            raise InvalidInput(
                f"column {name!r}: NaN is not a probability{C.first_bad(arr, pc.is_nan(arr))}"
            )
        out[name] = C.to_numbers(name, arr)
        outside = pc.or_(pc.less(out[name], 0.0), pc.greater(out[name], 1.0))
        if pc.any(pc.fill_null(outside, False)).as_py():
            raise InvalidInput(
                f"column {name!r}: probabilities must be within [0, 1]"
                f"{C.first_bad(out[name], outside)}"
            )
    if len(names) > 1:
        total = pc.fill_null(out[names[0]], 0.0)
        given = pc.cast(pc.is_valid(out[names[0]]), pa.int64())
        for name in names[1:]:
            total = pc.add(total, pc.fill_null(out[name], 0.0))
            given = pc.add(given, pc.cast(pc.is_valid(out[name]), pa.int64()))
        off = pc.and_(
            pc.greater(given, 1), pc.greater(pc.abs(pc.subtract(total, 1.0)), PROBA_SUM_TOLERANCE)
        )
        if pc.any(off).as_py():
            raise InvalidInput(
                f"class probabilities of a prediction must sum to 1{C.first_bad(total, off)}"
            )
    return out


def _same_features(features: list[str], profile: Profile) -> None:
    expected = set(profile.features)
    missing = sorted(expected - set(features))
    extra = sorted(set(features) - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing feature column(s) {missing[:10]}")
        if extra:
            parts.append(f"unknown column(s) {extra[:10]}")
        raise InvalidInput(
            "the batch does not match the reference schema: " + "; ".join(parts),
            hint=f"the reference has the features {sorted(expected)[:20]}",
        )


def labels_table(raw: pa.Table, *, task_type: str, now: datetime) -> pa.Table:
    """Validate a label batch: one label per known-looking prediction id, typed by task."""
    if raw.num_rows == 0:
        raise InvalidInput("the batch is empty", hint="send at least one label")
    if C.LABEL not in raw.column_names:
        raise InvalidInput(f"the batch has no {C.LABEL!r} column")
    extra = sorted(set(raw.column_names) - {C.PREDICTION_ID, C.LABEL})
    if extra:
        raise InvalidInput(
            f"unknown column(s) in a label batch: {extra[:10]}",
            hint="labels have prediction_id and label",
        )
    ids = prediction_ids(raw)
    if task_type == "regression":
        labels = C.to_numbers(C.LABEL, raw.column(C.LABEL), allow_null=False)
    else:
        labels = C.to_class_labels(C.LABEL, raw.column(C.LABEL))
        if labels.null_count:
            raise InvalidInput(
                f"{labels.null_count} row(s) have no label{C.first_bad(labels, pc.is_null(labels))}"
            )
    stamp = pa.repeat(pa.scalar(now, C.UTC_US), raw.num_rows)
    return pa.table({C.PREDICTION_ID: ids, C.LABEL: labels, C.LABELLED_AT: stamp})
