"""Scrape 48 h of backfilled DCGM history from a real Prometheus; check against hand-computed
values (see world.py for the GPUs and what each one tests)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.alerts.models import OPEN, Alert
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.hardware import report, service
from modeldeck.core.hardware.models import FindingKind, GpuUsageHourly, HardwareReport
from tests.core.hardware import world
from tests.core.hardware.conftest import History

A100_PRICE = 3.67


def scrape_all(
    session: Session, settings: Settings, history: History, clock: FixedClock
) -> HardwareReport:
    service.scrape(session, settings=settings, start=history.t0, end=history.end, clock=clock)
    return report.usage(
        session,
        settings=settings,
        start=history.t0,
        end=history.end,
        clock=clock,
        predictions={
            ("fraud-detector", "2.0.0", "production"): 62_000,
            ("fraud-detector", "2.0.0", "staging"): 8_000,
        },
    )


def usage(rep: HardwareReport, model: str, version: str, env: str) -> report.VersionUsage:
    (found,) = [
        v for v in rep.versions if (v.model, v.version, v.environment) == (model, version, env)
    ]
    return found


def hourly_p95(util: list[float], minutes: list[int]) -> float:
    """The report's p95: the 95th percentile of the version's hourly mean utilisation."""
    by_hour: dict[int, list[float]] = {}
    for m in minutes:
        by_hour.setdefault(m // 60, []).append(util[m])
    return float(np.percentile([np.mean(v) for v in by_hour.values()], 95))


def test_gpu_hours_utilisation_and_cost_match_the_generated_series(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    rep = scrape_all(session, settings, history, clock)
    util = [world.util_a(m) for m in range(world.MINUTES)]
    v2_minutes = list(range(world.V2_START, world.V2_END))
    v1_minutes = [m for m in range(world.MINUTES) if not world.V2_START <= m < world.V2_END]

    v2 = usage(rep, "fraud-detector", "2.0.0", "production")
    assert v2.gpu_hours == pytest.approx(len(v2_minutes) / 60, abs=1e-4)  # 10 h 20 min
    assert v2.util_mean == pytest.approx(np.mean([util[m] for m in v2_minutes]), abs=1e-3)
    assert v2.util_p95 == pytest.approx(hourly_p95(util, v2_minutes), abs=1e-3)
    assert v2.gpu_model == "A100" and v2.gpu_count == 1 and not v2.approximate
    assert v2.cost == pytest.approx(len(v2_minutes) / 60 * A100_PRICE, abs=1e-3)
    assert v2.cost_per_1k_predictions == pytest.approx(v2.cost / 62, rel=1e-4)
    assert v2.memory_total_gib == pytest.approx(80.0)
    power = [world.power_a(m) for m in v2_minutes]
    assert v2.power_watts == pytest.approx(np.mean(power), abs=0.01)

    v1 = usage(rep, "fraud-detector", "1.0.0", "production")
    assert v1.gpu_hours == pytest.approx(len(v1_minutes) / 60, abs=1e-4)  # 37 h 40 min
    assert v1.util_mean == pytest.approx(np.mean([util[m] for m in v1_minutes]), abs=1e-3)
    assert v1.util_p95 == pytest.approx(hourly_p95(util, v1_minutes), abs=1e-3)

    eta = usage(rep, "eta-regressor", "1.0.0", "production")
    assert eta.gpu_hours == pytest.approx(48.0)  # scraped by two jobs, counted once
    assert eta.util_mean == pytest.approx(
        np.mean([world.util_idle(m) for m in range(world.MINUTES)]), abs=1e-3
    )
    assert rep.cost == pytest.approx(sum(v.cost or 0 for v in rep.versions), abs=0.01)


def test_a_rolled_back_version_stops_counting_at_the_rollback_minute(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    scrape_all(session, settings, history, clock)
    hour = history.t0 + timedelta(hours=world.V2_END // 60)
    rows = session.exec(
        select(GpuUsageHourly).where(
            GpuUsageHourly.gpu_uuid == "GPU-A100-0", GpuUsageHourly.hour == hour
        )
    ).all()
    seconds = {r.version_id: r.gpu_seconds for r in rows}
    assert seconds == {
        ids["fraud-detector@2.0.0"][1]: 20 * 60,
        ids["fraud-detector@1.0.0"][1]: 40 * 60,
    }
    assert {r.attribution for r in rows} == {"pod_name"}


def test_pod_labels_attribute_a_pod_whose_name_matches_nothing(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    rep = scrape_all(session, settings, history, clock)
    churn = usage(rep, "churn-predictor", "2.0.0", "production")
    assert churn.gpu_hours == pytest.approx(48.0) and churn.util_mean == pytest.approx(70.0)
    rows = session.exec(
        select(GpuUsageHourly).where(GpuUsageHourly.pod == "batch-scorer-77f-q")
    ).all()
    assert len(rows) == 48
    assert {r.attribution for r in rows} == {"pod_labels"}
    assert {r.version_id for r in rows} == {ids["churn-predictor@2.0.0"][1]}


def test_a_gpu_shared_by_two_pods_is_split_and_marked_approximate(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    rep = scrape_all(session, settings, history, clock)
    fraud = usage(rep, "fraud-detector", "2.0.0", "staging")
    churn = usage(rep, "churn-predictor", "2.0.0", "staging")
    assert fraud.gpu_hours == pytest.approx(24.0) and churn.gpu_hours == pytest.approx(24.0)
    assert fraud.approximate and churn.approximate
    assert fraud.cost_per_1k_predictions == pytest.approx(24 * 0.81 / 8, rel=1e-4)
    total = sum(
        r.gpu_seconds
        for r in session.exec(
            select(GpuUsageHourly).where(GpuUsageHourly.gpu_uuid == "GPU-L4-0")
        ).all()
    )
    assert total == pytest.approx(48 * 3600)  # the GPU existed 48 h, not 96
    shared = [f for f in rep.findings if f.kind == FindingKind.shared_gpu]
    assert len(shared) == 1 and "approximate" in shared[0].summary
    assert shared[0].gpu_uuid == "GPU-L4-0"


def test_same_version_compared_across_gpu_models(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    rep = scrape_all(session, settings, history, clock)
    compared = {(c.model, c.version): c for c in rep.comparisons}
    assert set(compared) == {("fraud-detector", "2.0.0"), ("churn-predictor", "2.0.0")}
    by_gpu = {g.gpu_model: g for g in compared[("fraud-detector", "2.0.0")].by_gpu_model}
    assert set(by_gpu) == {"A100", "L4"}
    assert by_gpu["L4"].environments == ["staging"] and by_gpu["L4"].util_mean == 50.0
    assert by_gpu["A100"].cost_per_1k_predictions == pytest.approx(
        (world.V2_END - world.V2_START) / 60 * A100_PRICE / 62, rel=1e-4
    )
    assert by_gpu["L4"].cost_per_1k_predictions == pytest.approx(24 * 0.81 / 8, rel=1e-4)


def test_energy_counter_reset_is_not_a_negative_spike(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    scrape_all(session, settings, history, clock)
    rows = session.exec(select(GpuUsageHourly).where(GpuUsageHourly.gpu_uuid == "GPU-A100-0")).all()
    # Minute 0 has no earlier reading; every later minute consumed power(m) W for 60 s.
    expected_wh = sum(world.power_a(m) / 60 for m in range(1, world.MINUTES))
    assert sum(r.energy_wh or 0 for r in rows) == pytest.approx(expected_wh, rel=1e-6)
    reset_hour = [r for r in rows if r.hour == history.t0 + timedelta(hours=20)]
    assert reset_hour[0].energy_wh == pytest.approx(
        sum(world.power_a(m) / 60 for m in range(1200, 1260)), rel=1e-6
    )


def test_findings_say_why_attribution_failed_and_how_to_fix_it(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    rep = scrape_all(session, settings, history, clock)
    text: dict[FindingKind, list[str]] = {f.kind: [] for f in rep.findings}
    for f in rep.findings:
        text[f.kind].append(f"{f.summary} | {f.fix}")
    attribution = " ".join(text[FindingKind.attribution])
    assert "mystery-pod-1" in attribution and "match no model's target" in attribution
    assert "search-ranker-9f-1" in attribution and "no version active" in attribution
    assert "modeldeck.io/model" in attribution  # the fix
    labels = " ".join(text[FindingKind.missing_labels])
    assert "1 GPU series have neither a UUID nor a gpu label" in labels
    assert "no modelName label" in labels
    stuck = " ".join(text[FindingKind.metrics_stuck])
    assert "GPU-L4-3" in stuck and "0 W" in stuck
    unattributed = {u.cluster: u for u in rep.unattributed}
    assert unattributed["gpu-a100"].gpu_hours_free == pytest.approx(48.0)
    assert unattributed["gpu-l4"].gpu_hours_free == pytest.approx(48.0)  # the stuck GPU
    assert unattributed["gpu-l4"].gpu_hours_unmatched == pytest.approx(96.0)
    assert unattributed["gpu-l4"].pods == ["mystery-pod-1", "search-ranker-9f-1"]


def test_missing_pod_labels_everywhere_is_explained_with_the_exporter_fix(
    session: Session,
    history: History,
    ids: dict[str, tuple[int, int]],
    clock: FixedClock,
    settings: Settings,
) -> None:
    # Map the pod and namespace labels to names no series has: what an exporter without
    # DCGM_EXPORTER_KUBERNETES produces.
    blind = settings.model_copy(
        update={
            "prometheus": settings.prometheus.model_copy(
                update={"labels": {"pod": "exported_pod", "namespace": "exported_namespace"}}
            )
        }
    )
    result = service.scrape(session, settings=blind, start=history.t0, end=history.end, clock=clock)
    fixes = [f for f in result.findings if f.kind == FindingKind.attribution]
    assert {f.cluster for f in fixes} == {"gpu-a100", "gpu-l4"}
    assert all("DCGM_EXPORTER_KUBERNETES=true" in f.fix for f in fixes)
    assert all("pod-resources" in f.fix for f in fixes)


def test_alerts_fire_for_idle_memory_thermal_and_stuck_and_resolve(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    scrape_all(session, settings, history, clock)
    open_alerts = {(a.rule, a.key, a.version_id) for a in _open(session)}
    eta, fraud2, churn = (
        ids["eta-regressor@1.0.0"][1],
        ids["fraud-detector@2.0.0"][1],
        ids["churn-predictor@2.0.0"][1],
    )
    # No gpu_thermal: GPU-A100-1's hot hour is 43 h old, and a backfill does not page about
    # old hours (test_findings.py: the recent case).
    assert open_alerts == {
        ("gpu_idle", "gpu-a100/GPU-A100-2", eta),
        ("gpu_memory_full", "gpu-l4/GPU-L4-0", fraud2),
        ("gpu_memory_full", "gpu-l4/GPU-L4-0", churn),
        ("gpu_metrics", "metrics_stuck/gpu-l4", None),
    }
    idle = next(a for a in _open(session) if a.rule == "gpu_idle")
    assert idle.details["value"] == pytest.approx(2.0, abs=0.05)
    assert idle.details["threshold"] == 5 and "eta-regressor 1.0.0" in idle.summary

    # The last two hours again: the same alerts, each still open once.
    clock.advance(minutes=10)
    service.scrape(
        session,
        settings=settings,
        start=history.end - timedelta(hours=2),
        end=history.end,
        clock=clock,
    )
    assert {a.rule for a in _open(session)} == {"gpu_idle", "gpu_memory_full", "gpu_metrics"}
    assert next(a for a in _open(session) if a.rule == "gpu_idle").count == 2

    # A stricter idle threshold: 2% is no longer "idle" below 1%.
    strict = settings.model_copy(
        update={"prometheus": settings.prometheus.model_copy(update={"idle_util_percent": 1.0})}
    )
    service.scrape(
        session,
        settings=strict,
        start=history.end - timedelta(hours=2),
        end=history.end,
        clock=clock,
    )
    assert "gpu_idle" not in {a.rule for a in _open(session)}


def _open(session: Session) -> list[Alert]:
    session.expire_all()
    return list(session.exec(select(Alert).where(col(Alert.status).in_(OPEN))).all())


def _snapshot(session: Session) -> list[tuple[object, ...]]:
    rows = session.exec(select(GpuUsageHourly)).all()
    return sorted(
        (
            r.hour,
            r.gpu_uuid,
            r.pod,
            r.version_id,
            round(r.gpu_seconds, 6),
            round(r.util_mean, 6),
            round(r.util_p95, 6),
            r.samples,
            None if r.energy_wh is None else round(r.energy_wh, 6),
        )
        for r in rows
    )


def test_bounded_points_give_the_same_rows_and_a_rescrape_replaces(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    first = service.scrape(
        session, settings=settings, start=history.t0, end=history.end, clock=clock
    )
    # 48 h in chunks of 6 h: no query asks for more than 361 points per series.
    assert first.chunks == 8 and first.max_points_per_query == 6 * 60 + 1
    before = _snapshot(session)
    bounded = settings.model_copy(
        update={"prometheus": settings.prometheus.model_copy(update={"max_points": 100})}
    )
    again = service.scrape(
        session, settings=bounded, start=history.t0, end=history.end, clock=clock
    )
    assert again.max_points_per_query <= 100
    assert again.queries >= 8 * 8 * 4  # 8 chunks × 8 metrics, each in 4 bounded queries
    assert _snapshot(session) == before  # same numbers, and nothing counted twice


def test_metric_and_label_names_are_configurable(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    relabelled = settings.model_copy(
        update={
            "prometheus": settings.prometheus.model_copy(update={"labels": {"node": "instance"}})
        }
    )
    service.scrape(session, settings=relabelled, start=history.t0, end=history.end, clock=clock)
    nodes = set(
        session.exec(
            select(GpuUsageHourly.node).where(GpuUsageHourly.gpu_uuid == "GPU-A100-0")
        ).all()
    )
    assert nodes == {"a100-n1:9400"}


def test_live_report_from_prometheus_equals_the_stored_one(
    session: Session,
    settings: Settings,
    ids: dict[str, tuple[int, int]],
    history: History,
    clock: FixedClock,
) -> None:
    stored = scrape_all(session, settings, history, clock)
    live = report.live_usage(
        session,
        settings=settings,
        start=history.t0,
        end=history.end,
        clock=clock,
        predictions={
            ("fraud-detector", "2.0.0", "production"): 62_000,
            ("fraud-detector", "2.0.0", "staging"): 8_000,
        },
    )
    assert live.versions == stored.versions
    assert live.comparisons == stored.comparisons


@pytest.mark.postgres
def test_scrape_and_report_on_postgres(
    pg_engine: Engine, settings: Settings, history: History, clock: FixedClock
) -> None:
    with Session(pg_engine, expire_on_commit=False) as pg:
        environments.sync(pg, settings)
        world.seed(pg, history.t0)
        rep = scrape_all(pg, settings, history, clock)
        assert usage(rep, "fraud-detector", "2.0.0", "production").gpu_hours == pytest.approx(
            (world.V2_END - world.V2_START) / 60, abs=1e-4
        )
        assert usage(rep, "eta-regressor", "1.0.0", "production").gpu_hours == 48.0
        assert {a.rule for a in _open(pg)} == {"gpu_idle", "gpu_memory_full", "gpu_metrics"}
        again = service.scrape(
            pg, settings=settings, start=history.t0, end=history.end, clock=clock
        )
        assert again.rows == len(pg.exec(select(GpuUsageHourly)).all())  # replaced, not added
