"""Synthetic traffic, labels and reference data for the demo, vectorised with numpy.

Everything is drawn from generators seeded by (model, day, purpose), so the same day of the
same model is the same data whichever order it is generated in, and a reseeded world is
identical. Staging receives a mirror of production's requests (shadow traffic): the same
feature rows under their own prediction ids, answered by the staging version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from modeldeck.core.demo import world
from modeldeck.core.demo.behaviours import BEHAVIOURS, Behaviour, Features, sigmoid
from modeldeck.core.monitoring import columns as C

SEED = 20_251_104
HOUR = 3600.0
_MODEL_INDEX = {spec.name: i for i, spec in enumerate(world.MODELS)}


def rng_for(model: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng([SEED, _MODEL_INDEX[model], *keys])


def version_key(version: str) -> int:
    """A stable integer per version string (seeds its answer noise)."""
    return int.from_bytes(version.encode()[:8].ljust(8, b"\0"), "little") % (2**31)


def hourly_rate(rate: float, hours: np.ndarray) -> np.ndarray:
    """Requests per hour for unix-hour starts: peak mid-afternoon UTC, quieter weekends."""
    hour_of_day = (hours / HOUR) % 24
    weekday = ((hours // 86400) + 3) % 7  # 1970-01-01 was a Thursday (3)
    daily = 1.0 + 0.45 * np.sin(2 * np.pi * (hour_of_day - 10) / 24)
    return rate * daily * np.where(weekday >= 5, 0.85, 1.0)


@dataclass(frozen=True)
class Requests:
    """One day of a model's production requests: ids, times and features."""

    ids: np.ndarray
    times: np.ndarray  # unix seconds
    days: np.ndarray  # days since the start of the history
    features: Features

    def __len__(self) -> int:
        return len(self.ids)


def requests(model: str, day: int, start: datetime) -> Requests:
    """Production requests of history day `day` (any day, also after day 90)."""
    spec = world.model(model)
    rng = rng_for(model, day, 1)
    first = (start + timedelta(days=day)).timestamp()
    hours = first + HOUR * np.arange(24)
    counts = rng.poisson(hourly_rate(spec.rate_per_hour, hours))
    starts = np.repeat(hours, counts)
    times = np.sort(starts + rng.uniform(0, HOUR, len(starts)))
    stamp = (start + timedelta(days=day)).strftime("%Y%m%d")
    ids = np.char.add(f"{_prefix(model)}-{stamp}-", np.arange(len(times)).astype(str))
    days = (times - start.timestamp()) / 86400.0
    return Requests(
        ids=ids.astype(object),
        times=times,
        days=days,
        features=BEHAVIOURS[model].features(rng, days),
    )


def _prefix(model: str) -> str:
    return "".join(part[0] for part in model.split("-"))  # fraud-detector -> fd


def predictions(model: str, version: str, batch: Requests, *, shadow: bool) -> pa.Table:
    """What `version` answered to the requests, as an ingestion batch."""
    behaviour = BEHAVIOURS[model]
    rng = np.random.default_rng(
        [
            SEED,
            _MODEL_INDEX[model],
            version_key(version),
            int(batch.days[0]) if len(batch) else 0,
            2,
        ]
    )
    ids = np.char.add(batch.ids.astype(str), "-s") if shadow else batch.ids.astype(str)
    columns: dict[str, pa.Array] = {
        C.PREDICTION_ID: pa.array(ids, pa.string()),
        C.TIMESTAMP: pa.array((batch.times * 1e6).astype("int64"), C.UTC_US),
    }
    served = behaviour.served(batch.features, batch.days)
    if behaviour.classification:
        proba = sigmoid(served + rng.normal(0.0, 0.12, len(batch)))
        columns[C.PREDICTION] = pa.array(
            np.where(proba >= 0.5, behaviour.positive, behaviour.negative), pa.string()
        )
        columns[C.PROBA_PREFIX + behaviour.positive] = pa.array(np.round(proba, 5))
    else:
        columns[C.PREDICTION] = pa.array(np.round(served + rng.normal(0.0, 0.5, len(batch)), 2))
    for name, values in batch.features.items():
        columns[name] = _feature_array(values)
    return pa.table(columns)


def _feature_array(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        return pa.array(values.tolist(), pa.string())
    if values.dtype.kind == "f":
        return pa.array(values, pa.float64(), from_pandas=True)  # NaN -> missing
    return pa.array(values)


def outcomes(model: str, batch: Requests) -> np.ndarray:
    """What really happened to each request (the label), drawn once per request."""
    behaviour = BEHAVIOURS[model]
    rng = rng_for(model, int(batch.days[0]) if len(batch) else 0, 3)
    truth = behaviour.truth(batch.features, batch.days)
    if behaviour.classification:
        hit = rng.random(len(batch)) < sigmoid(truth)
        return np.where(hit, behaviour.positive, behaviour.negative).astype(object)
    return np.round(truth + rng.normal(0.0, behaviour.noise, len(batch)), 2)


def label_times(model: str, batch: Requests, labels: np.ndarray) -> np.ndarray:
    """Unix seconds at which each request's label arrives."""
    rng = rng_for(model, int(batch.days[0]) if len(batch) else 0, 4)
    return batch.times + BEHAVIOURS[model].label_delay(rng, labels) * HOUR


def labels_table(ids: np.ndarray, values: np.ndarray, behaviour: Behaviour) -> pa.Table:
    label = (
        pa.array(values.tolist(), pa.string())
        if behaviour.classification
        else pa.array(values.astype(float))
    )
    return pa.table({C.PREDICTION_ID: pa.array(ids.astype(str), pa.string()), C.LABEL: label})


def reference(
    model: str, version: str, day: float, start: datetime, rows: int = world.HOLDOUT_ROWS
) -> pa.Table:
    """The version's validation set: requests from the week before it was registered,
    with the model's answers and the true outcomes. Its first REFERENCE_ROWS rows are the
    reference data; the whole set gives the metrics the training pipeline reports."""
    behaviour = BEHAVIOURS[model]
    rng = np.random.default_rng([SEED, _MODEL_INDEX[model], version_key(version), 5])
    days = np.sort(rng.uniform(max(0.0, day - 7), max(day, 1.0), rows))
    times = start.timestamp() + days * 86400.0
    batch = Requests(
        ids=np.arange(rows).astype(str).astype(object),
        times=times,
        days=days,
        features=behaviour.features(rng, days),
    )
    table = predictions(model, version, batch, shadow=False)
    table = table.drop_columns([C.PREDICTION_ID, C.TIMESTAMP])
    values = outcomes(model, batch)
    label = (
        pa.array(values.tolist(), pa.string())
        if behaviour.classification
        else pa.array(values.astype(float))
    )
    return table.append_column(C.LABEL, label)
