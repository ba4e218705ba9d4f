"""evaluate_check: the rules over stored check results, trust levels and promotion pauses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from modeldeck.core.alerts import rules, service
from modeldeck.core.alerts.models import Alert, AlertStatus, Severity
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import CheckConfig, Settings
from modeldeck.core.errors import NotFound
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.rollouts.models import Deployment
from tests.core.alerts.world import check_result, drift_details, live_deployment, outbox, snapshot


def _with_trust(settings: Settings, trust: str, **more: object) -> Settings:
    cfg = CheckConfig.model_validate({"trust": trust, **more})
    return settings.model_copy(update={"model_checks": {"fraud": cfg}})


def _evaluate(
    session: Session, settings: Settings, clock: FixedClock, result: CheckResult
) -> list[Alert]:
    return service.evaluate_check(session, settings=settings, result=result, clock=clock)


def test_drift_over_the_threshold_fires_an_alert_that_explains_itself(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    details = drift_details(0.6, {"amount": 0.41, "country": 0.93, "device": 0.12})
    result = check_result(
        session, dep, CheckKind.drift, CheckStatus.fail, end=clock(), score=0.6, details=details
    )
    [alert] = _evaluate(session, settings, clock, result)

    assert alert.rule == rules.DRIFT and alert.severity == Severity.warning
    assert alert.details["metric"] == "share of drifted columns"
    assert alert.details["value"] == 0.6 and alert.details["threshold"] == 0.5
    assert alert.details["window"] == "2026-11-01 11:00–12:00 UTC"
    assert alert.details["top_features"] == [
        "country (psi 0.93)",
        "amount (psi 0.41)",
        "device (psi 0.12)",
    ]
    assert alert.details["check_result_id"] == result.id
    assert alert.details["dashboard_url"] == f"http://127.0.0.1:8501/alerts?alert={alert.id}"
    assert alert.summary == (
        "Data drift in fraud 1.0.0 in production: 60% of columns drifted "
        "(threshold 50%) over 2026-11-01 11:00–12:00 UTC; top: country "
        "(psi 0.93), amount (psi 0.41), device (psi 0.12)"
    )
    assert [m.kind for m in outbox(session)] == ["alert"]


def test_drift_below_the_threshold_fires_nothing_and_healthy_resolves(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    low = check_result(
        session,
        dep,
        CheckKind.drift,
        CheckStatus.warn,
        end=clock(),
        score=0.2,
        details=drift_details(0.2, {"amount": 0.3}),
    )
    assert _evaluate(session, settings, clock, low) == []
    high = check_result(
        session,
        dep,
        CheckKind.drift,
        CheckStatus.fail,
        end=clock(),
        score=0.7,
        details=drift_details(0.7, {"amount": 0.3}),
    )
    [fired] = _evaluate(session, settings, clock, high)
    clock.advance(minutes=15)
    ok = check_result(
        session,
        dep,
        CheckKind.drift,
        CheckStatus.ok,
        end=clock(),
        score=0.0,
        details=drift_details(0.0, {}),
    )
    [resolved] = _evaluate(session, settings, clock, ok)
    assert resolved.id == fired.id and resolved.status == AlertStatus.resolved
    assert [m.kind for m in outbox(session)] == ["alert", "alert_resolved"]


def test_p_value_tests_rank_smaller_scores_as_stronger_drift() -> None:
    details = {
        "columns": [
            {
                "column": "a",
                "drift_score": 0.04,
                "stattest_threshold": 0.05,
                "stattest": "ks",
                "drift_detected": True,
            },
            {
                "column": "b",
                "drift_score": 0.0001,
                "stattest_threshold": 0.05,
                "stattest": "ks",
                "drift_detected": True,
            },
            {
                "column": "c",
                "drift_score": 0.5,
                "stattest_threshold": 0.05,
                "stattest": "ks",
                "drift_detected": False,
            },
        ]
    }
    assert [t["column"] for t in rules.top_drifting(details)] == ["b", "a"]


def test_quality_failure_is_critical_and_lists_the_problems(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    result = check_result(
        session,
        dep,
        CheckKind.quality,
        CheckStatus.fail,
        end=clock(),
        details={"problems": ["country: 38% missing (max 5%)", "channel: new category 'kiosk'"]},
    )
    [alert] = _evaluate(session, settings, clock, result)
    assert alert.rule == rules.QUALITY and alert.severity == Severity.critical
    assert alert.details["problems"] == [
        "country: 38% missing (max 5%)",
        "channel: new category 'kiosk'",
    ]
    assert "country: 38% missing (max 5%); channel: new category 'kiosk'" in alert.summary


@pytest.mark.parametrize(
    "value,reference,metric,fires,severity",
    [
        (0.85, 0.92, "accuracy", True, Severity.warning),  # 7.6% below, allowed 5%
        (0.80, 0.92, "accuracy", True, Severity.critical),  # 13% below: twice the allowance
        (0.90, 0.92, "accuracy", False, None),  # 2.2% below: fine
        (4.5, 4.0, "mae", True, Severity.critical),  # lower is better: 12.5% worse
        (3.9, 4.0, "mae", False, None),  # mae improved
    ],
)
def test_performance_drop_against_the_reference(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    dep: Deployment,
    value: float,
    reference: float,
    metric: str,
    fires: bool,
    severity: Severity | None,
) -> None:
    result = check_result(
        session,
        dep,
        CheckKind.decay,
        CheckStatus.warn,
        end=clock(),
        score=value,
        details={"metric": metric, "value": value, "reference": reference},
    )
    fired = _evaluate(session, settings, clock, result)
    assert bool(fired) is fires
    if fired:
        assert fired[0].rule == rules.DECAY and fired[0].severity == severity
        assert fired[0].details["reference"] == reference
        assert f"{metric} {value:.4g}" in fired[0].summary


def test_no_data_fires_only_after_no_data_hours(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    had_data = check_result(session, dep, CheckKind.drift, CheckStatus.ok, end=clock(), score=0.0)
    _evaluate(session, settings, clock, had_data)
    clock.advance(hours=5, minutes=59)
    quiet = check_result(session, dep, CheckKind.drift, CheckStatus.no_data, end=clock())
    assert _evaluate(session, settings, clock, quiet) == []
    clock.advance(minutes=1)
    silent = check_result(session, dep, CheckKind.quality, CheckStatus.no_data, end=clock())
    [alert] = _evaluate(session, settings, clock, silent)
    assert alert.rule == rules.NO_DATA and alert.details["value"] == 6.0
    assert alert.summary == (
        "No predictions for fraud 1.0.0 in production since 2026-11-01 "
        "12:00 UTC (6.0 h; alert after 6 h)"
    )
    clock.advance(minutes=15)
    back = check_result(session, dep, CheckKind.drift, CheckStatus.ok, end=clock(), score=0.0)
    [resolved] = _evaluate(session, settings, clock, back)
    assert resolved.id == alert.id and resolved.status == AlertStatus.resolved


def test_labels_that_stop_arriving_are_their_own_alert(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    # Live for two days, never a label: the clock starts when it went live.
    result = check_result(
        session,
        dep,
        CheckKind.decay,
        CheckStatus.no_data,
        end=clock(),
        details={"source": None, "labelled_rows": 0, "metrics": {}},
    )
    [alert] = _evaluate(session, settings, clock, result)
    assert alert.rule == rules.NO_LABELS
    assert "No labels for fraud 1.0.0 in production since it went live" in alert.summary


def test_labels_stopping_while_estimates_continue_still_alerts(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    labelled = {
        "source": "realised",
        "labelled_rows": 400,
        "metric": "accuracy",
        "value": 0.91,
        "reference": 0.92,
        "drop": 0.011,
    }
    first = check_result(
        session, dep, CheckKind.decay, CheckStatus.ok, end=clock(), details=labelled
    )
    assert _evaluate(session, settings, clock, first) == []
    estimated = {
        "source": "estimated",
        "labelled_rows": 0,
        "metric": "accuracy",
        "value": 0.9,
        "reference": 0.92,
        "drop": 0.02,
    }
    clock.advance(hours=5)
    early = check_result(
        session, dep, CheckKind.decay, CheckStatus.ok, end=clock(), details=estimated
    )
    assert _evaluate(session, settings, clock, early) == []
    clock.advance(hours=1)
    late = check_result(
        session, dep, CheckKind.decay, CheckStatus.ok, end=clock(), details=estimated
    )
    [alert] = _evaluate(session, settings, clock, late)
    assert alert.rule == rules.NO_LABELS and alert.details["value"] == 6.0
    clock.advance(minutes=15)
    back = check_result(
        session, dep, CheckKind.decay, CheckStatus.ok, end=clock(), details=labelled
    )
    assert [a.status for a in _evaluate(session, settings, clock, back)] == [AlertStatus.resolved]


def test_decay_checks_that_cannot_apply_or_may_only_warn_stay_quiet(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    other = check_result(
        session, dep, CheckKind.decay, CheckStatus.no_data, end=clock(), details={"task": "other"}
    )
    assert _evaluate(session, settings, clock, other) == []
    capped = check_result(
        session,
        dep,
        CheckKind.decay,
        CheckStatus.warn,
        end=clock(),
        details={
            "source": "estimated",
            "labelled_rows": 50,
            "metric": "accuracy",
            "value": 0.7,
            "reference": 0.92,
            "drop": 0.24,
            "estimate_note": "not calibrated",
        },
    )
    assert _evaluate(session, settings, clock, capped) == []


def test_a_check_that_errors_alerts_and_clears(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    broken = check_result(
        session,
        dep,
        CheckKind.drift,
        CheckStatus.error,
        end=clock(),
        details={"error": "reference data not found: s3://ref/fraud.parquet"},
    )
    [alert] = _evaluate(session, settings, clock, broken)
    assert alert.rule == rules.CHECK_ERROR and alert.key == "drift"
    assert "s3://ref/fraud.parquet" in alert.summary
    clock.advance(minutes=15)
    fixed = check_result(session, dep, CheckKind.drift, CheckStatus.ok, end=clock(), score=0)
    assert [a.status for a in _evaluate(session, settings, clock, fixed)] == [AlertStatus.resolved]


def test_shadow_trust_records_without_notifying(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    shadow = _with_trust(settings, "shadow")
    result = check_result(session, dep, CheckKind.quality, CheckStatus.fail, end=clock())
    [alert] = _evaluate(session, shadow, clock, result)
    assert alert.status == AlertStatus.firing and alert.details["trust"] == "shadow"
    assert alert.last_notified is None and outbox(session) == []


@pytest.mark.parametrize("trust,paused", [("notify", False), ("pause", True), ("rollback", True)])
def test_pause_trust_pauses_promotions_until_resolved(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    dep: Deployment,
    trust: str,
    paused: bool,
) -> None:
    cfg = _with_trust(settings, trust)
    result = check_result(
        session,
        dep,
        CheckKind.drift,
        CheckStatus.fail,
        end=clock(),
        score=0.9,
        details=drift_details(0.9, {"amount": 0.5}),
    )
    [alert] = _evaluate(session, cfg, clock, result)
    reason = service.promotions_paused(
        session, model_id=dep.model_id, environment_id=dep.environment_id
    )
    assert (reason is not None) is paused
    if reason:
        assert reason.startswith(f"promotions are paused by alert {alert.id} (drift)")
        assert f"modeldeck resolve {alert.id}" in reason
    clock.advance(minutes=15)
    ok = check_result(session, dep, CheckKind.drift, CheckStatus.ok, end=clock(), score=0.0)
    _evaluate(session, cfg, clock, ok)
    assert (
        service.promotions_paused(session, model_id=dep.model_id, environment_id=dep.environment_id)
        is None
    )


def test_alerts_of_a_replaced_version_resolve(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    failing = check_result(session, dep, CheckKind.quality, CheckStatus.fail, end=clock())
    [old] = _evaluate(session, settings, clock, failing)
    clock.advance(hours=1)
    new = live_deployment(session, version="1.1.0", at=clock())
    ok = check_result(session, new, CheckKind.quality, CheckStatus.ok, end=clock())
    touched = _evaluate(session, settings, clock, ok)
    assert [(a.id, a.status) for a in touched] == [(old.id, AlertStatus.resolved)]


def test_unknown_deployment_is_refused_and_nothing_changes(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment
) -> None:
    orphan = CheckResult(
        id=None,
        deployment_id=424242,
        kind=CheckKind.drift,
        window_start=clock() - timedelta(hours=1),
        window_end=clock(),
        status=CheckStatus.fail,
    )
    before = snapshot(session)
    with pytest.raises(NotFound, match="no deployment with id 424242"):
        _evaluate(session, settings, clock, orphan)
    assert snapshot(session) == before
