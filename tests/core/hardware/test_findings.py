"""Findings and alerts that depend on configuration or time: pod-label names that match
nothing, the idle rule reading the stored GPU-seconds, heat alerting only for recent hours."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.hardware import alerting, service
from modeldeck.core.hardware.models import Finding, FindingKind
from tests.core.hardware import world
from tests.core.hardware.conftest import History
from tests.core.hardware.test_faults import with_prometheus
from tests.core.hardware.test_scrape import _open


def _labels_findings(result_findings: list[Finding]) -> list[Finding]:
    return [
        f
        for f in result_findings
        if f.kind == FindingKind.missing_labels and "attributed by their names only" in f.summary
    ]


@pytest.mark.parametrize(
    ("metrics", "labels", "setting", "suggestion"),
    [
        ({"pod_labels": "kube_pod_label"}, {}, "prometheus.metrics.pod_labels", "kube_pod_labels"),
        (
            {},
            {"version": "label_modeldeck_version"},
            "prometheus.labels.version",
            "label_modeldeck_io_version",
        ),
        ({}, {"model": "label_app_model"}, "prometheus.labels.model", "label_modeldeck_io_model"),
    ],
)
def test_a_pod_labels_name_that_matches_nothing_is_a_finding_naming_the_setting(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
    metrics: dict[str, str],
    labels: dict[str, str],
    setting: str,
    suggestion: str,
) -> None:
    wrong = with_prometheus(settings, metrics=metrics, labels=labels)
    result = service.scrape(
        session,
        settings=wrong,
        start=history.end - timedelta(hours=1),
        end=history.end,
        clock=clock,
    )
    (finding,) = _labels_findings(result.findings)
    assert finding.severity == "warning" and finding.summary.startswith(setting)
    assert f"did you mean {suggestion}" in finding.fix
    assert finding.details["setting"] == setting


def test_pod_labels_found_give_no_such_finding(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    result = service.scrape(
        session,
        settings=settings,
        start=history.end - timedelta(hours=1),
        end=history.end,
        clock=clock,
    )
    assert _labels_findings(result.findings) == []


def test_idle_uses_the_stored_gpu_seconds_not_samples_times_todays_step(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    """GPU-A100-2 idled for the last 6 h, stored at a 60 s step. After the step is changed to
    30 s, it was still held for 6 h (samples × 30 s would say 3 h and miss it)."""
    service.scrape(
        session,
        settings=settings,
        start=history.end - timedelta(hours=6),
        end=history.end,
        clock=clock,
    )
    finer = settings.model_copy(
        update={"prometheus": settings.prometheus.model_copy(update={"step_seconds": 30})}
    )
    coarser = settings.model_copy(
        update={"prometheus": settings.prometheus.model_copy(update={"idle_hours": 8})}
    )

    def names(*_: object) -> tuple[str, str, str]:
        return ("eta-regressor", "1.0.0", "production")

    idle = alerting.idle(session, finer, history.end, names)
    assert [f.key for f in idle] == ["gpu-a100/GPU-A100-2"]
    assert alerting.idle(session, coarser, history.end, names) == []  # held 6 h, not 8


def test_thermal_alerts_for_a_recent_hot_hour(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
) -> None:
    """The hot hour alerts when it is one of the last hours (here: the clock is an hour past
    it); the 48 h backfill above, with the hour long past, does not."""
    hot_end = history.t0 + timedelta(hours=world.HOT_HOUR + 1)
    clock = FixedClock(hot_end + timedelta(minutes=5))
    result = service.scrape(session, settings=settings, start=history.t0, end=hot_end, clock=clock)
    thermal = [a for a in _open(session) if a.rule == "gpu_thermal"]
    assert [(a.key, a.version_id) for a in thermal] == [
        ("gpu-a100/GPU-A100-1", ids["churn-predictor@2.0.0"][1])
    ]
    assert thermal[0].details["value"] == 90.0
    assert any(f.kind == FindingKind.thermal for f in result.findings)
