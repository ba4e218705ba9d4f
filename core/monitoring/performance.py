"""Model performance: realised (from labels) and estimated without labels (CBPE).

Confidence-based performance estimation (as NannyML's CBPE): for a calibrated classifier the
probability that a prediction is right is the probability it gave its predicted class, so the
expected accuracy is the mean of those probabilities, and expected confusion counts (hence F1
and the ROC curve) are sums of probabilities. Estimates are only as good as the calibration,
which is why the reference's calibration error is measured and reported beside them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "auc": True, "mae": False, "rmse": False}
ALIASES = {"roc_auc": "auc", "rocauc": "auc", "f1_score": "f1", "acc": "accuracy"}
CLASSIFICATION_METRICS = ("accuracy", "f1", "auc")
REGRESSION_METRICS = ("mae", "rmse")
MAX_ECE = 0.1  # expected calibration error above which estimates are flagged as unreliable
_PAIRS = (("0", "1"), ("false", "true"), ("no", "yes"), ("neg", "pos"), ("negative", "positive"))


@dataclass(frozen=True)
class Task:
    """What the model predicts: regression, or classification over known classes."""

    type: str
    classes: tuple[str, ...] = ()
    positive: str | None = None
    proba_classes: tuple[str, ...] = field(default=())

    @property
    def classification(self) -> bool:
        return self.type == "classification"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "classes": list(self.classes),
            "positive": self.positive,
            "proba_classes": list(self.proba_classes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(
            type=str(data.get("type", "other")),
            classes=tuple(data.get("classes", ())),
            positive=data.get("positive"),
            proba_classes=tuple(data.get("proba_classes", ())),
        )


def canonical_metric(name: str) -> str:
    key = name.strip().lower()
    return ALIASES.get(key, key)


def positive_class(classes: list[str], proba_classes: list[str]) -> str | None:
    """The class F1 and AUC are about in a binary task; None for multiclass (macro averages)."""
    if len(classes) != 2:
        return None
    lowered = {c.lower(): c for c in classes}
    for negative, positive in _PAIRS:
        if set(lowered) == {negative, positive}:
            return lowered[positive]
    if len(proba_classes) == 1 and proba_classes[0] in classes:
        return proba_classes[0]
    return sorted(classes)[-1]


def probability_matrix(task: Task, proba: dict[str, np.ndarray]) -> np.ndarray | None:
    """Rows × task.classes probabilities (a binary task needs only one side), rows normalised
    to sum to 1; None when the classes are not covered."""
    if not task.classes:
        return None
    if len(task.classes) == 2 and task.positive is not None:
        negative = next(c for c in task.classes if c != task.positive)
        if task.positive in proba:
            p = proba[task.positive]
        elif negative in proba:
            p = 1.0 - proba[negative]
        else:
            return None
        matrix = np.column_stack([1.0 - p, p])
        return matrix if task.classes[0] == negative else matrix[:, ::-1]
    if not all(c in proba for c in task.classes):
        return None
    matrix = np.column_stack([proba[c] for c in task.classes]).astype(float)
    sums = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)


def realised(
    task: Task, y_true: np.ndarray, y_pred: np.ndarray, matrix: np.ndarray | None
) -> dict[str, float | None]:
    """Metrics from labels: accuracy/F1/AUC for classification, MAE/RMSE for regression."""
    if len(y_true) == 0:
        return {}
    if not task.classification:
        err = y_pred.astype(float) - y_true.astype(float)
        return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}
    from sklearn.metrics import f1_score, roc_auc_score

    out: dict[str, float | None] = {"accuracy": float(np.mean(y_true == y_pred))}
    if task.positive is not None:
        out["f1"] = float(
            f1_score(y_true, y_pred, pos_label=task.positive, average="binary", zero_division=0.0)
        )
    else:
        out["f1"] = float(f1_score(y_true, y_pred, average="macro", zero_division=0.0))
    out["auc"] = None
    if matrix is not None and len(set(y_true.tolist())) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined AUC is reported as None below
            try:
                if task.positive is not None:
                    col = task.classes.index(task.positive)
                    auc = roc_auc_score(y_true == task.positive, matrix[:, col])
                else:
                    auc = roc_auc_score(
                        y_true, matrix, multi_class="ovr", labels=list(task.classes)
                    )
            except ValueError:  # a class absent from the labels: AUC is undefined here
                auc = float("nan")
        out["auc"] = float(auc) if np.isfinite(auc) else None
    return out


def estimated(task: Task, y_pred: np.ndarray, matrix: np.ndarray) -> dict[str, float | None]:
    """CBPE: expected accuracy, F1 and ROC AUC from predicted probabilities alone."""
    if len(y_pred) == 0:
        return {}
    index = {c: i for i, c in enumerate(task.classes)}
    cols = np.array([index.get(p, -1) for p in y_pred.tolist()])
    known = cols >= 0
    p_pred = np.where(known, matrix[np.arange(len(cols)), np.maximum(cols, 0)], 0.0)
    out: dict[str, float | None] = {"accuracy": float(np.mean(p_pred))}
    if task.positive is not None:
        pos = index[task.positive]
        out["f1"] = _expected_f1(matrix[:, pos], cols == pos)
        out["auc"] = expected_auc(matrix[:, pos])
    else:
        f1s = [_expected_f1(matrix[:, k], cols == k) for k in range(len(task.classes))]
        aucs = [expected_auc(matrix[:, k]) for k in range(len(task.classes))]
        out["f1"] = _mean([f for f in f1s if f is not None])
        out["auc"] = _mean([a for a in aucs if a is not None])
    return out


def _expected_f1(p: np.ndarray, predicted: np.ndarray) -> float | None:
    tp = float(p[predicted].sum())
    fp = float((1.0 - p[predicted]).sum())
    fn = float(p[~predicted].sum())
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator > 0 else None


def expected_auc(p: np.ndarray) -> float | None:
    """Area under the expected ROC curve: at each threshold the expected true positives are
    the summed probabilities above it, the false positives their complements."""
    ordered = np.sort(p)[::-1]
    last_of_tie = np.r_[np.diff(ordered) != 0, True]
    tp = np.r_[0.0, np.cumsum(ordered)[last_of_tie]]
    fp = np.r_[0.0, np.cumsum(1.0 - ordered)[last_of_tie]]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return None
    return float(np.trapezoid(tp / tp[-1], fp / fp[-1]))


def calibration(
    task: Task, y_true: np.ndarray, y_pred: np.ndarray, matrix: np.ndarray, bins: int = 10
) -> dict[str, Any]:
    """Expected calibration error of the predicted-class confidence on labelled data."""
    index = {c: i for i, c in enumerate(task.classes)}
    cols = np.array([index.get(p, -1) for p in y_pred.tolist()])
    keep = cols >= 0
    confidence = matrix[np.arange(len(cols))[keep], cols[keep]]
    correct = (y_true[keep] == y_pred[keep]).astype(float)
    if len(confidence) == 0:
        return {"ece": None, "bins": bins, "calibrated": None, "max_ece": MAX_ECE}
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return {"ece": float(ece), "bins": bins, "calibrated": bool(ece <= MAX_ECE), "max_ece": MAX_ECE}


def relative_drop(metric: str, value: float, reference: float) -> float | None:
    """How much worse than the reference, as a fraction (positive = worse)."""
    if reference == 0:
        return None
    change = reference - value if HIGHER_IS_BETTER.get(metric, True) else value - reference
    return change / abs(reference)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None
