"""Column names, storage types and the casts every frame goes through (predictions, labels and
reference data alike), so a value means the same thing wherever it was ingested from."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modeldeck.core.errors import InvalidInput

PREDICTION_ID = "prediction_id"
TIMESTAMP = "timestamp"
PREDICTION = "prediction"
LABEL = "label"
LABELLED_AT = "labelled_at"
PROBA_PREFIX = "proba_"
VERSION = "version"  # stored with each label: which deployment's prediction it names
ENVIRONMENT = "environment"
META = ("model", VERSION, ENVIRONMENT)
RESERVED = frozenset({PREDICTION_ID, TIMESTAMP, PREDICTION, LABEL, LABELLED_AT, *META})
MAX_NAME = 200

UTC_US = pa.timestamp("us", tz="UTC")
STORAGE_TYPES: dict[str, pa.DataType] = {
    "double": pa.float64(),
    "int64": pa.int64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": UTC_US,
}


def storage_name(dtype: pa.DataType) -> str:
    """The storage type a column of `dtype` is kept as (ints widen, strings unify)."""
    if pa.types.is_integer(dtype):
        return "int64"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "double"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_dictionary(dtype) and (
        pa.types.is_string(dtype.value_type) or pa.types.is_large_string(dtype.value_type)
    ):
        return "string"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype):
        return "timestamp"
    raise ValueError(f"unsupported column type {dtype}")


def proba_class(name: str) -> str:
    return name[len(PROBA_PREFIX) :]


def check_names(names: list[str], what: str) -> None:
    for name in names:
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise InvalidInput(f"{what} name {name!r} must be 1-{MAX_NAME} printable characters")


def first_bad(values: pa.ChunkedArray | pa.Array, mask: pa.ChunkedArray | pa.Array) -> str:
    """`row N: value` of the first row where `mask` is true: the example an error shows."""
    index = pc.index(pc.fill_null(mask, False), True).as_py()
    if index is None or index < 0:
        return ""
    value = values[index].as_py()
    return f" (row {index}: {value!r})"


def _wrong_type(name: str, expected: str, got: pa.DataType, example: str = "") -> InvalidInput:
    return InvalidInput(
        f"column {name!r}: expected {expected} values, got {got}{example}",
        hint="the reference data fixes each column's type",
    )


def to_timestamps(name: str, arr: pa.ChunkedArray) -> pa.ChunkedArray:
    """Any timestamp (naive = UTC), date or ISO 8601 string as UTC microseconds."""
    dtype = arr.type
    try:
        if pa.types.is_timestamp(dtype):
            if dtype.tz is None:
                arr = pc.assume_timezone(arr, "UTC")
            # pandas stamps are nanoseconds: microseconds are kept, the rest truncated
            return pc.cast(arr, UTC_US, safe=False)
        if pa.types.is_date(dtype):
            return arr.cast(pa.timestamp("us")).cast(UTC_US)
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
            return _parse_iso(arr)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInput(f"column {name!r}: not a valid timestamp ({exc})") from None
    raise _wrong_type(name, "timestamp", dtype)


def _parse_iso(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    # Arrow parses offsets ("+02:00", "Z") only into zoned types and refuses naive strings
    # there, so try zoned first and fall back to naive-as-UTC.
    try:
        return arr.cast(UTC_US)
    except pa.ArrowInvalid:
        return pc.assume_timezone(arr.cast(pa.timestamp("us")), "UTC")


def to_class_labels(name: str, arr: pa.ChunkedArray) -> pa.ChunkedArray:
    """Class labels as strings: ints, bools and whole floats (1.0 -> "1") are accepted, so a
    label sent as 1 matches a prediction sent as "1"."""
    dtype = arr.type
    if pa.types.is_dictionary(dtype):
        arr = arr.cast(dtype.value_type)
        dtype = arr.type
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return arr.cast(pa.string())
    if pa.types.is_integer(dtype) or pa.types.is_boolean(dtype):
        return arr.cast(pa.string())
    if pa.types.is_floating(dtype):
        finite = pc.is_finite(arr)
        whole = pc.equal(pc.floor(arr), arr)
        bad = pc.invert(pc.and_(finite, whole))
        if pc.any(pc.fill_null(bad, False)).as_py():
            raise _wrong_type(
                name, "class label (string, integer or boolean)", dtype, first_bad(arr, bad)
            )
        return arr.cast(pa.int64()).cast(pa.string())
    if pa.types.is_null(dtype):
        return pa.chunked_array([pa.nulls(len(arr), pa.string())])
    raise _wrong_type(name, "class label (string, integer or boolean)", dtype)


def to_numbers(name: str, arr: pa.ChunkedArray, *, allow_null: bool = True) -> pa.ChunkedArray:
    """Finite doubles; NaN is a missing value, infinity is refused."""
    dtype = arr.type
    if pa.types.is_null(dtype):
        arr = pa.chunked_array([pa.nulls(len(arr), pa.float64())])
    elif pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        arr = arr.cast(pa.float64())
    else:
        raise _wrong_type(name, "numeric", dtype, first_bad(arr, pc.is_valid(arr)))
    return finite_or_null(name, arr, allow_null=allow_null)


def finite_or_null(name: str, arr: pa.ChunkedArray, *, allow_null: bool) -> pa.ChunkedArray:
    inf = pc.is_inf(arr)
    if pc.any(inf).as_py():
        raise InvalidInput(
            f"column {name!r}: infinite value{first_bad(arr, inf)}",
            hint="send null for a missing value; infinity is never valid",
        )
    nan = pc.is_nan(arr)
    if pc.any(nan).as_py():
        arr = pc.if_else(nan, pa.scalar(None, pa.float64()), arr)
    if not allow_null and arr.null_count:
        raise InvalidInput(
            f"column {name!r}: {arr.null_count} missing (null or NaN) "
            f"value(s){first_bad(arr, pc.is_null(arr))}"
        )
    return arr


def conform(name: str, arr: pa.ChunkedArray, storage: str) -> pa.ChunkedArray:
    """Cast a feature column to its storage type or raise InvalidInput naming the column and
    the first offending row. Only lossless casts are done (1.5 never becomes 1)."""
    dtype = arr.type
    if pa.types.is_null(dtype):
        return pa.chunked_array([pa.nulls(len(arr), STORAGE_TYPES[storage])])
    if pa.types.is_dictionary(dtype):
        arr = arr.cast(dtype.value_type)
        dtype = arr.type
    if storage == "double":
        return to_numbers(name, arr)
    if storage == "int64":
        if pa.types.is_integer(dtype):
            return arr.cast(pa.int64())
        if pa.types.is_floating(dtype):
            arr = finite_or_null(name, arr, allow_null=True)
            fractional = pc.not_equal(pc.floor(arr), arr)
            if pc.any(pc.fill_null(fractional, False)).as_py():
                raise _wrong_type(name, "integer", dtype, first_bad(arr, fractional))
            return arr.cast(pa.int64())
        raise _wrong_type(name, "integer", dtype, first_bad(arr, pc.is_valid(arr)))
    if storage == "string":
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
            return arr.cast(pa.string())
        raise _wrong_type(name, "string", dtype, first_bad(arr, pc.is_valid(arr)))
    if storage == "bool":
        if pa.types.is_boolean(dtype):
            return arr
        raise _wrong_type(name, "boolean", dtype, first_bad(arr, pc.is_valid(arr)))
    if storage == "timestamp":
        return to_timestamps(name, arr)
    raise InvalidInput(f"column {name!r}: unknown storage type {storage!r}")


def lenient_conform(arr: pa.ChunkedArray, storage: str) -> tuple[pa.ChunkedArray, int]:
    """For data already stored (e.g. before the reference was replaced): cast what casts
    losslessly; otherwise every stored value is a type mismatch (the quality check reports
    them) and is kept as far as it converts, else null."""
    try:
        return conform("", arr, storage), 0
    except InvalidInput:
        pass
    mismatched = int(len(arr) - arr.null_count)
    series = arr.to_pandas()
    if storage in ("double", "int64"):
        numbers = pd.to_numeric(series, errors="coerce")
        if storage == "int64":
            numbers = numbers.where(numbers == numbers.round()).astype("Int64")
        out = pa.chunked_array([pa.array(numbers, from_pandas=True)]).cast(STORAGE_TYPES[storage])
    elif storage == "string":
        out = pa.chunked_array(
            [pa.array(series.map(lambda v: None if pd.isna(v) else str(v)), type=pa.string())]
        )
    elif storage == "bool":
        truth = {"true": True, "false": False, "1": True, "0": False}
        out = pa.chunked_array(
            [pa.array(series.map(lambda v: truth.get(str(v).lower())), type=pa.bool_())]
        )
    else:
        stamps = pd.to_datetime(series, errors="coerce", utc=True)
        out = pa.chunked_array([pa.array(stamps, from_pandas=True)]).cast(UTC_US)
    return out, mismatched


def python_values(values: list[Any], name: str) -> pa.ChunkedArray:
    """A JSON column as Arrow (type inferred; NaN stays NaN for numbers, where `conform`
    makes it missing); mixed types answer with the first row that does not fit."""
    try:
        return pa.chunked_array([pa.array(values)])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    values = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    try:
        return pa.chunked_array([pa.array(values)])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    kinds = [_json_kind(v) for v in values]
    first = next(k for k in kinds if k is not None)
    row = next((i for i, k in enumerate(kinds) if k is not None and k != first), 0)
    raise InvalidInput(
        f"column {name!r}: mixed value types: row {row} is {values[row]!r}, "
        f"earlier rows are {first} values"
    )


def _json_kind(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | np.number):
        return "numeric"
    return type(value).__name__
