"""Synthetic but realistic monitoring data with known shifts (a fraud-style classifier)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

NUMERIC = ["amount", "age", "score_a", "score_b"]
CATEGORICAL = ["country", "channel"]
FEATURES = NUMERIC + CATEGORICAL
COUNTRIES = (["de", "fr", "us", "uk"], [0.4, 0.3, 0.2, 0.1])
CHANNELS = (["web", "app", "pos"], [0.5, 0.3, 0.2])


def features(
    n: int, seed: int, *, shift: dict[str, float] | None = None, swap: Iterable[str] = ()
) -> pd.DataFrame:
    """`shift` moves a numeric column by that many standard deviations; `swap` reverses a
    categorical column's category frequencies."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    swap = set(swap)
    frame = pd.DataFrame(
        {
            "amount": rng.lognormal(3.0, 0.5, n),
            "age": rng.normal(40.0, 10.0, n),
            "score_a": rng.normal(0.0, 1.0, n),
            "score_b": rng.uniform(0.0, 1.0, n),
        }
    )
    spread = {"amount": 12.0, "age": 10.0, "score_a": 1.0, "score_b": 0.29}
    for name, sigmas in shift.items():
        frame[name] = frame[name] + sigmas * spread[name]
    for name, (values, p) in (("country", COUNTRIES), ("channel", CHANNELS)):
        probs = np.array(p[::-1] if name in swap else p)
        frame[name] = rng.choice(values, n, p=probs / probs.sum())
    return frame


def probability(frame: pd.DataFrame) -> np.ndarray:
    z = 1.5 * frame["score_a"].to_numpy() + 0.02 * (frame["age"].to_numpy() - 40)
    return 1.0 / (1.0 + np.exp(-z))


def reference(n: int = 4000, seed: int = 1) -> pd.DataFrame:
    """Features, prediction, calibrated labels and both class probabilities."""
    frame = features(n, seed)
    p = probability(frame)
    rng = np.random.default_rng(seed + 100)
    frame["prediction"] = (p >= 0.5).astype(int)
    frame["label"] = (rng.uniform(size=n) < p).astype(int)
    frame["proba_1"] = p
    frame["proba_0"] = 1.0 - p
    return frame


def predictions(
    n: int,
    seed: int,
    start: datetime,
    *,
    span: timedelta = timedelta(minutes=50),
    prefix: str = "p",
    **shape: object,
) -> pd.DataFrame:
    """A batch of predictions with ids `prefix-0…` spread evenly over `span` from `start`."""
    frame = features(n, seed, **shape)  # type: ignore[arg-type]
    p = probability(frame)
    frame.insert(0, "prediction_id", [f"{prefix}-{i}" for i in range(n)])
    step = span / max(n, 1)
    frame.insert(1, "timestamp", [start + i * step for i in range(n)])
    frame["prediction"] = (p >= 0.5).astype(int)
    frame["proba_1"] = p
    frame["proba_0"] = 1.0 - p
    return frame


def labels_for(batch: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Calibrated ground truth for a prediction batch (drawn from its probabilities)."""
    rng = np.random.default_rng(seed)
    p = batch["proba_1"].to_numpy()
    return pd.DataFrame(
        {
            "prediction_id": batch["prediction_id"],
            "label": (rng.uniform(size=len(batch)) < p).astype(int),
        }
    )
