"""How each demo model's world behaves: its inputs, what it answers, what really happens.

Each behaviour is vectorised over a batch: `days` holds each row's time in days since the
start of the history, so the planted problems (drift, break, decay) are functions of time and
a batch of any length or date gets them right. The classifiers are calibrated by
construction: the outcome is drawn from the same probability the model reports, up to a small
per-version noise, so label-free estimates (CBPE) track the realised metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from modeldeck.core.demo import world

Features = dict[str, np.ndarray]
Rng = np.random.Generator


def ramp(days: np.ndarray, start: float, length: float) -> np.ndarray:
    """0 before `start`, rising linearly to 1 over `length` days."""
    return np.clip((days - start) / length, 0.0, 1.0)


def choice(rng: Rng, values: list[str], probs: np.ndarray) -> np.ndarray:
    """One category per row from per-row probabilities `probs` (n, k): drift moves them."""
    cumulative = np.cumsum(probs, axis=1)
    draws = rng.random((probs.shape[0], 1))
    index = np.minimum((draws > cumulative).sum(axis=1), len(values) - 1)
    return np.asarray(values, dtype=object)[index]


def categorical(rng: Rng, n: int, values: list[str], probs: list[float]) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p / p.sum())]


def effect(values: np.ndarray, table: dict[str, float]) -> np.ndarray:
    out = np.zeros(len(values))
    for key, weight in table.items():
        out[values == key] = weight
    return out


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class Behaviour:
    """One model's world. `truth` is the real logit (classification) or mean minutes
    (regression); `served` is what the model computes from what it receives (the same before
    a problem, not after); `label_delay` is hours from prediction to ground truth, given the
    outcomes (some outcomes are known sooner than others)."""

    features: Callable[[Rng, np.ndarray], Features]
    truth: Callable[[Features, np.ndarray], np.ndarray]
    served: Callable[[Features, np.ndarray], np.ndarray]
    label_delay: Callable[[Rng, np.ndarray], np.ndarray]
    positive: str = ""
    negative: str = ""
    noise: float = 0.0  # regression: standard deviation of the outcome around the truth

    @property
    def classification(self) -> bool:
        return bool(self.positive)


# fraud-detector: amount and merchant_category drift from day 60 -----------------------------

MERCHANTS = ["grocery", "restaurants", "fashion", "electronics", "travel", "gaming"]
MERCHANTS_BEFORE = np.array([0.30, 0.22, 0.15, 0.12, 0.11, 0.10])
MERCHANTS_AFTER = np.array([0.10, 0.10, 0.10, 0.32, 0.08, 0.30])


def fraud_features(rng: Rng, days: np.ndarray) -> Features:
    n = len(days)
    shift = ramp(days, world.DRIFT_START, world.DRIFT_DAYS)
    mix = (
        MERCHANTS_BEFORE[None, :] * (1 - shift[:, None]) + MERCHANTS_AFTER[None, :] * shift[:, None]
    )
    return {
        "amount": np.round(rng.lognormal(3.7 + 0.7 * shift, 0.9, n), 2),
        "merchant_category": choice(rng, MERCHANTS, mix),
        "country": categorical(
            rng, n, ["US", "GB", "DE", "FR", "ES", "BR"], [0.46, 0.14, 0.12, 0.10, 0.08, 0.10]
        ),
        "channel": categorical(rng, n, ["web", "app", "pos"], [0.48, 0.37, 0.15]),
        "device_age_days": np.round(rng.exponential(300.0, n), 1),
        "txn_count_24h": rng.poisson(2.2, n).astype(np.int64),
    }


def fraud_truth(f: Features, days: np.ndarray) -> np.ndarray:
    return 8.5 + 5.0 * (
        -3.6
        + 0.9 * np.log(f["amount"] / 40.0)
        + effect(f["merchant_category"], {"electronics": 1.0, "gaming": 1.2, "travel": 0.6})
        + 1.6 * (f["device_age_days"] < 14)
        + 0.35 * (f["txn_count_24h"] - 2)
        + effect(f["country"], {"BR": 0.7, "US": -0.2})
        + effect(f["channel"], {"web": 0.4, "pos": -0.8})
    )


# churn-predictor: monthly_spend goes null and plan "family" appears on day 80 --------------

PLANS = ["basic", "standard", "premium"]


def churn_features(rng: Rng, days: np.ndarray) -> Features:
    n = len(days)
    broken = days >= world.BREAK_DAY
    plan = categorical(rng, n, PLANS, [0.45, 0.35, 0.20])
    family = broken & (rng.random(n) < 0.12)
    plan[family] = "family"
    base = effect(plan, {"basic": 15.0, "standard": 30.0, "premium": 55.0, "family": 42.0})
    spend = np.round(base * rng.lognormal(0.0, 0.25, n), 2)
    spend[broken] = np.nan  # the upstream billing export dropped the column
    return {
        "tenure_months": np.round(np.minimum(rng.exponential(22.0, n) + 1, 120), 1),
        "plan": plan,
        "monthly_spend": spend,
        "support_tickets": rng.poisson(1.1, n).astype(np.int64),
        "region": categorical(rng, n, ["na", "emea", "apac"], [0.42, 0.35, 0.23]),
    }


def churn_truth(f: Features, days: np.ndarray) -> np.ndarray:
    spend = np.where(np.isnan(f["monthly_spend"]), 38.0, f["monthly_spend"])
    return 0.5 + 1.8 * (
        -0.2
        - 0.05 * f["tenure_months"]
        + 0.5 * f["support_tickets"]
        + effect(f["plan"], {"basic": 0.4, "premium": -0.5, "family": -0.3})
        + 0.015 * (spend - 30.0)
        + effect(f["region"], {"apac": 0.2})
    )


def churn_served(f: Features, days: np.ndarray) -> np.ndarray:
    """The serving code fills a missing spend with 0 and treats an unknown plan as basic:
    after the break its answers go wrong without any error."""
    spend = np.nan_to_num(f["monthly_spend"], nan=0.0)
    plan = np.where(np.isin(f["plan"], PLANS), f["plan"], "basic")
    return 0.5 + 1.8 * (
        -0.2
        - 0.05 * f["tenure_months"]
        + 0.5 * f["support_tickets"]
        + effect(plan, {"basic": 0.4, "premium": -0.5})
        + 0.015 * (spend - 30.0)
        + effect(f["region"], {"apac": 0.2})
    )


# eta-regressor: deliveries get slower from day 50, the model does not ----------------------

SPEED = {"bike": 3.0, "scooter": 2.2, "car": 1.8}  # minutes per km


def eta_features(rng: Rng, days: np.ndarray) -> Features:
    n = len(days)
    return {
        "distance_km": np.round(rng.gamma(2.2, 1.8, n), 2),
        "traffic_index": np.round(rng.beta(2.0, 3.0, n) * 10, 2),
        "weather": categorical(rng, n, ["clear", "rain", "fog", "snow"], [0.62, 0.24, 0.09, 0.05]),
        "courier_load": rng.poisson(3.0, n).astype(np.int64),
        "prep_time_min": np.round(np.clip(rng.normal(12.0, 4.0, n), 2.0, None), 1),
        "vehicle": categorical(rng, n, ["bike", "scooter", "car"], [0.5, 0.35, 0.15]),
    }


def eta_served(f: Features, days: np.ndarray) -> np.ndarray:
    return (
        6.0
        + f["distance_km"] * effect(f["vehicle"], SPEED)
        + 0.9 * f["traffic_index"]
        + effect(f["weather"], {"rain": 3.0, "fog": 2.0, "snow": 7.0})
        + 1.1 * f["courier_load"]
        + 0.7 * f["prep_time_min"]
    )


def eta_truth(f: Features, days: np.ndarray) -> np.ndarray:
    """From day 50 a new courier routing policy adds minutes the model never learned."""
    return eta_served(f, days) + 0.12 * np.maximum(days - world.DECAY_START, 0.0)


# search-ranker: healthy ---------------------------------------------------------------------

CATEGORIES = ["electronics", "home", "fashion", "books", "sports", "toys"]


def search_features(rng: Rng, days: np.ndarray) -> Features:
    n = len(days)
    return {
        "query_len": (rng.poisson(2.5, n) + 1).astype(np.int64),
        "ctr_prior": np.round(rng.beta(2.0, 6.0, n), 4),
        "position": rng.integers(1, 51, n).astype(np.int64),
        "category": categorical(rng, n, CATEGORIES, [0.24, 0.2, 0.18, 0.14, 0.13, 0.11]),
        "device": categorical(rng, n, ["mobile", "desktop", "tablet"], [0.62, 0.33, 0.05]),
        "bm25": np.round(rng.gamma(3.0, 4.0, n), 3),
    }


def search_truth(f: Features, days: np.ndarray) -> np.ndarray:
    return 0.6 + 2.0 * (
        -1.2
        + 14.0 * (f["ctr_prior"] - 0.25)
        - 0.05 * (f["position"] - 25)
        + 1.6 * np.log(f["bm25"] / 12.0)
        + effect(f["category"], {"books": 0.4, "toys": -0.3})
        + effect(f["device"], {"desktop": 0.2})
    )


# label delays -------------------------------------------------------------------------------


def fraud_delay(rng: Rng, outcomes: np.ndarray) -> np.ndarray:
    """85% settled within hours (issuer feedback, card holder confirmation), the rest by
    chargeback within 2-7 days."""
    n = len(outcomes)
    quick = rng.random(n) < 0.85
    return np.where(quick, rng.uniform(0.5, 6.0, n), rng.uniform(48.0, 168.0, n))


def churn_delay(rng: Rng, outcomes: np.ndarray) -> np.ndarray:
    """7-day churn is known a week later, except for the subscribers who cancel at once."""
    n = len(outcomes)
    early = (outcomes == "churn") & (rng.random(n) < 0.15)
    return np.where(early, rng.uniform(1.0, 12.0, n), 7 * 24.0 + rng.uniform(0.0, 6.0, n))


def eta_delay(rng: Rng, outcomes: np.ndarray) -> np.ndarray:
    """The delivery time is known when the courier hands over the order."""
    return rng.uniform(0.3, 1.6, len(outcomes))


def search_delay(rng: Rng, outcomes: np.ndarray) -> np.ndarray:
    """Relevance judgements (clicks, dwell) within half an hour."""
    return rng.uniform(0.02, 0.5, len(outcomes))


BEHAVIOURS: dict[str, Behaviour] = {
    "fraud-detector": Behaviour(
        fraud_features, fraud_truth, fraud_truth, fraud_delay, positive="fraud", negative="legit"
    ),
    "churn-predictor": Behaviour(
        churn_features, churn_truth, churn_served, churn_delay, positive="churn", negative="stay"
    ),
    "eta-regressor": Behaviour(eta_features, eta_truth, eta_served, eta_delay, noise=3.0),
    "search-ranker": Behaviour(
        search_features,
        search_truth,
        search_truth,
        search_delay,
        positive="relevant",
        negative="irrelevant",
    ),
}
