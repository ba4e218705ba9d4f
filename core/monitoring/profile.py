"""The reference profile: computed once when reference data is set, reused by every check.

Column kinds follow evidently's own inference (`evidently.core.datasets.infer_column_type`),
so the drift test chosen for a column is the one DataDriftPreset would choose.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modeldeck.core.errors import InvalidInput
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import performance
from modeldeck.core.monitoring.models import ColumnKind, ReferenceProfile
from modeldeck.core.monitoring.performance import Task
from modeldeck.core.monitoring.store import CHECKSUMS

MAX_CATEGORIES = 1000  # above this a category set is not kept (new-category checks stop)
DRIFT_KINDS = (ColumnKind.numerical, ColumnKind.categorical, ColumnKind.text)


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: ColumnKind
    dtype: str
    role: str  # feature | prediction | label | proba
    missing_share: float
    n_unique: int
    min: float | None = None
    max: float | None = None
    categories: tuple[Any, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "dtype": self.dtype,
            "role": self.role,
            "missing_share": self.missing_share,
            "n_unique": self.n_unique,
            "min": self.min,
            "max": self.max,
            "categories": list(self.categories) if self.categories is not None else None,
        }

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> ColumnSpec:
        cats = data.get("categories")
        return cls(
            name=name,
            kind=ColumnKind(data["kind"]),
            dtype=data["dtype"],
            role=data["role"],
            missing_share=float(data["missing_share"]),
            n_unique=int(data["n_unique"]),
            min=data.get("min"),
            max=data.get("max"),
            categories=tuple(cats) if cats is not None else None,
        )


@dataclass(frozen=True)
class Profile:
    hash: str
    data_uri: str
    rows: int
    columns: dict[str, ColumnSpec]
    task: Task
    metrics: dict[str, Any]

    @property
    def features(self) -> dict[str, ColumnSpec]:
        return {n: c for n, c in self.columns.items() if c.role == "feature"}

    @property
    def prediction(self) -> ColumnSpec | None:
        return self.columns.get(C.PREDICTION)

    @property
    def proba_columns(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.role == "proba"]

    @classmethod
    def from_row(cls, row: ReferenceProfile) -> Profile:
        return cls(
            hash=row.hash,
            data_uri=row.data_uri,
            rows=row.rows,
            columns={n: ColumnSpec.from_dict(n, d) for n, d in row.columns.items()},
            task=Task.from_dict(row.task),
            metrics=dict(row.metrics),
        )


@dataclass(frozen=True)
class Computed:
    table: pa.Table
    data: bytes
    profile: Profile


def compute(
    raw: pa.Table, *, task_type: str, column_types: dict[str, ColumnKind] | None = None
) -> Computed:
    """Validate reference data, bring it to storage types and profile it. Raises InvalidInput
    naming the column for anything a check could not use."""
    table = _canonical(raw, task_type)
    overrides = column_types or {}
    unknown = sorted(set(overrides) - set(table.column_names))
    if unknown:
        raise InvalidInput(f"column types given for columns not in the reference: {unknown}")
    task = _task(table, task_type)
    specs = {
        name: _spec(name, table.column(name), _role(name), overrides.get(name), task)
        for name in table.column_names
    }
    metrics = _reference_metrics(table, task)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", **CHECKSUMS)  # verified on every read
    data = sink.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    profile = Profile(
        hash=digest, data_uri="", rows=table.num_rows, columns=specs, task=task, metrics=metrics
    )
    return Computed(table=table, data=data, profile=profile)


def _role(name: str) -> str:
    if name == C.PREDICTION:
        return "prediction"
    if name == C.LABEL:
        return "label"
    if name.startswith(C.PROBA_PREFIX):
        return "proba"
    return "feature"


def _canonical(raw: pa.Table, task_type: str) -> pa.Table:
    if raw.num_rows == 0:
        raise InvalidInput("the reference data is empty", hint="send at least one row")
    keep = [
        n
        for n in raw.column_names
        if n not in (C.PREDICTION_ID, C.TIMESTAMP, C.LABELLED_AT, *C.META)
    ]
    C.check_names(keep, "column")
    if len(set(keep)) != len(keep):
        raise InvalidInput("the reference data has duplicate column names")
    if not [n for n in keep if _role(n) == "feature"]:
        raise InvalidInput("the reference data has no feature columns")
    arrays: dict[str, pa.ChunkedArray] = {}
    for name in keep:
        arr = raw.column(name)
        role = _role(name)
        if role in ("prediction", "label"):
            arrays[name] = (
                C.to_class_labels(name, arr)
                if task_type != "regression"
                else C.to_numbers(name, arr)
            )
        elif role == "proba":
            arrays[name] = C.to_numbers(name, arr)
            _check_probabilities(name, arrays[name])
        else:
            try:
                storage = C.storage_name(arr.type)
            except ValueError:
                raise InvalidInput(
                    f"column {name!r}: unsupported type {arr.type}",
                    hint="features must be numbers, strings, booleans or timestamps",
                ) from None
            arrays[name] = C.conform(name, arr, storage)
        if arrays[name].null_count == raw.num_rows:
            raise InvalidInput(
                f"reference column {name!r} has no values",
                hint="drop the column or fill it: no check can use it",
            )
    return pa.table(arrays)


def _check_probabilities(name: str, arr: pa.ChunkedArray) -> None:
    outside = pc.or_(pc.less(arr, 0.0), pc.greater(arr, 1.0))
    if pc.any(pc.fill_null(outside, False)).as_py():
        raise InvalidInput(
            f"column {name!r}: probabilities must be within [0, 1]{C.first_bad(arr, outside)}"
        )


def _task(table: pa.Table, task_type: str) -> Task:
    if task_type != "classification":
        return Task(type=task_type)
    proba = [C.proba_class(n) for n in table.column_names if n.startswith(C.PROBA_PREFIX)]
    seen: set[str] = set(proba)
    for name in (C.PREDICTION, C.LABEL):
        if name in table.column_names:
            seen |= {v for v in pc.unique(table.column(name)).to_pylist() if v is not None}
    if C.LABEL in table.column_names and proba:
        labels = {v for v in pc.unique(table.column(C.LABEL)).to_pylist() if v is not None}
        strangers = sorted(labels - set(proba)) if len(proba) > 1 else []
        if strangers:
            raise InvalidInput(
                f"label values {strangers[:5]} have no probability column",
                hint=f"probability columns are named {C.PROBA_PREFIX}<class>; "
                f"found classes {sorted(proba)}",
            )
    classes = sorted(seen)
    return Task(
        type=task_type,
        classes=tuple(classes),
        positive=performance.positive_class(classes, proba),
        proba_classes=tuple(sorted(proba)),
    )


def infer_kind(arr: pa.ChunkedArray) -> ColumnKind:
    """evidently's inference on the pandas form of the column (booleans with gaps, which
    pandas turns into objects, stay categorical)."""
    from evidently.core.datasets import infer_column_type

    if pa.types.is_boolean(arr.type):
        return ColumnKind.categorical
    kind = infer_column_type(arr.to_pandas())
    return (
        ColumnKind(kind.value)
        if kind.value in ColumnKind._value2member_map_
        else ColumnKind.unknown
    )


def _spec(
    name: str, arr: pa.ChunkedArray, role: str, override: ColumnKind | None, task: Task
) -> ColumnSpec:
    if role == "prediction":
        kind = ColumnKind.categorical if task.classification else ColumnKind.numerical
    elif role == "label":
        kind = ColumnKind.categorical if task.classification else ColumnKind.numerical
    elif role == "proba":
        kind = ColumnKind.numerical
    else:
        kind = override or infer_kind(arr)
    storage = C.storage_name(arr.type)
    n = len(arr)
    n_unique = int(pc.count_distinct(arr, mode="only_valid").as_py())
    low = high = None
    if storage in ("double", "int64"):
        bounds = pc.min_max(arr)
        low, high = _float(bounds["min"].as_py()), _float(bounds["max"].as_py())
    categories = None
    if kind == ColumnKind.categorical and n_unique <= MAX_CATEGORIES:
        values = [v for v in pc.unique(arr).to_pylist() if v is not None]
        categories = tuple(sorted(values, key=str))
    return ColumnSpec(
        name=name,
        kind=kind,
        dtype=storage,
        role=role,
        missing_share=arr.null_count / n if n else 0.0,
        n_unique=n_unique,
        min=low,
        max=high,
        categories=categories,
    )


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _reference_metrics(table: pa.Table, task: Task) -> dict[str, Any]:
    """The reference's own performance and calibration, when it carries labels."""
    names = table.column_names
    if C.LABEL not in names or C.PREDICTION not in names:
        return {}
    both = pc.and_(pc.is_valid(table.column(C.LABEL)), pc.is_valid(table.column(C.PREDICTION)))
    labelled = table.filter(both)
    y_true = labelled.column(C.LABEL).to_numpy(zero_copy_only=False)
    y_pred = labelled.column(C.PREDICTION).to_numpy(zero_copy_only=False)
    proba = {
        C.proba_class(n): labelled.column(n).to_numpy(zero_copy_only=False)
        for n in names
        if n.startswith(C.PROBA_PREFIX)
    }
    matrix = None
    if task.classification and proba:
        matrix = performance.probability_matrix(
            task, {k: np.nan_to_num(v, nan=0.0) for k, v in proba.items()}
        )
    out: dict[str, Any] = {
        "realised": performance.realised(task, y_true, y_pred, matrix),
        "labelled_rows": len(y_true),
    }
    if matrix is not None and len(y_true):
        out["calibration"] = performance.calibration(task, y_true, y_pred, matrix)
    return out


def public_columns(profile: Profile) -> dict[str, dict[str, Any]]:
    return {n: c.to_dict() for n, c in profile.columns.items()}
