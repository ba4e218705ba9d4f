"""Rules about what stopped arriving: no predictions, no labels (pure, like rules.py).

Silence is judged from the newest arrival the checks recorded, so labels that lag the window
but keep arriving are healthy, and a deployment that never got data counts from going live.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from modeldeck.core.alerts.models import Severity
from modeldeck.core.alerts.rules import NO_DATA, NO_LABELS, Finding, base_details
from modeldeck.core.clock import as_utc
from modeldeck.core.config import CheckConfig
from modeldeck.core.monitoring import readings
from modeldeck.core.monitoring.models import CheckResult, CheckStatus


def has_labels(result: CheckResult) -> bool | None:
    """Did this decay result see labels? None when it cannot tell (the check errored)."""
    if result.status == CheckStatus.error:
        return None
    labelled = readings.number(result.details.get("labelled_rows"))
    if labelled is not None:
        return labelled > 0
    return result.status != CheckStatus.no_data


def no_predictions(
    result: CheckResult,
    cfg: CheckConfig,
    subject: str,
    last_data_at: datetime | None,
    since: datetime,
) -> Finding:
    """No predictions for CheckConfig.no_data_hours (drift and quality results).

    `last_data_at` is the end of the newest window that had data; `since` is when the
    deployment went live (the clock starts there when it never had data)."""
    if result.status == CheckStatus.error:
        return Finding(NO_DATA, None)
    if result.status != CheckStatus.no_data:
        return Finding(NO_DATA, False)  # data flows again: healthy
    return _silence(result, cfg, subject, NO_DATA, "predictions", last_data_at, since)


def no_labels(
    result: CheckResult,
    cfg: CheckConfig,
    subject: str,
    last_labels_at: datetime | None,
    since: datetime,
) -> Finding:
    """No label arrived for CheckConfig.no_labels_hours (default no_data_hours; decay
    results), even when the check still estimates performance from probabilities.

    The decay check records when the version's newest label arrived (`last_label_at`, from
    the label store), so labels that lag more than the window but keep arriving are healthy.
    Results without it (older checks) fall back to `last_labels_at`, the end of the newest
    decay window that saw labels."""
    labels = has_labels(result)
    if labels is None or (result.status == CheckStatus.no_data and "task" in result.details):
        return Finding(NO_LABELS, None)  # errored, or a model decay does not apply to
    if "last_label_at" in result.details:
        return _label_silence(result, cfg, subject, since)
    if labels:
        return Finding(NO_LABELS, False)
    return _silence(result, cfg, subject, NO_LABELS, "labels", last_labels_at, since)


def _label_silence(result: CheckResult, cfg: CheckConfig, subject: str, since: datetime) -> Finding:
    raw = result.details.get("last_label_at")
    last = as_utc(datetime.fromisoformat(raw)) if isinstance(raw, str) else None
    lookback = readings.number(result.details.get("label_lookback_hours"))
    floor = as_utc(result.window_end) - timedelta(hours=lookback or 0)
    never = "since it went live"
    if last is None and lookback and floor > as_utc(since):  # none as far as the check looked
        since, never = floor, f"for over {lookback:g} h"
    threshold = cfg.no_labels_hours or float(cfg.no_data_hours)
    return _silence(result, cfg, subject, NO_LABELS, "labels", last, since, threshold, never)


def _silence(
    result: CheckResult,
    cfg: CheckConfig,
    subject: str,
    rule: str,
    what: str,
    last_at: datetime | None,
    since: datetime,
    threshold: float | None = None,
    never: str = "since it went live",
) -> Finding:
    """Fires after `threshold` hours (default no_data_hours) without `what`; with an explicit
    threshold (arrival times known) a shorter silence is healthy, else no opinion."""
    hours_allowed = threshold or cfg.no_data_hours
    reference = as_utc(last_at) if last_at else as_utc(since)
    silent = as_utc(result.window_end) - reference
    if silent < timedelta(hours=hours_allowed):
        return Finding(rule, False if threshold else None)  # not quiet for long enough
    hours = silent.total_seconds() / 3600
    details = base_details(
        result,
        metric=f"hours without {what}",
        value=round(hours, 1),
        threshold=hours_allowed,
        last_data_at=reference.isoformat() if last_at else None,
    )
    since_txt = f"since {reference:%Y-%m-%d %H:%M} UTC" if last_at else never
    summary = (
        f"No {what} for {subject} {since_txt} ({hours:.1f} h; alert after {hours_allowed:g} h)"
    )
    return Finding(rule, True, Severity.warning, summary, details)
