"""The demo's timeline and configuration hold together before anything is seeded."""

from __future__ import annotations

from pathlib import Path

from modeldeck.core.config import Settings
from modeldeck.core.demo import gpu, world


def test_every_release_goes_through_staging_before_production() -> None:
    for spec in world.MODELS:
        for rel in spec.releases:
            assert rel.registered < rel.staging, (spec.name, rel.version)
            if rel.production is not None:
                assert rel.staging < rel.production, (spec.name, rel.version)
        assert (
            sum(1 for r in spec.releases if r.production is not None) >= 2
            or spec.name == "churn-predictor"
        )


def test_approvals_come_from_a_second_person_and_one_request_still_waits() -> None:
    events = world.timeline()
    requests = [e for e in events if e.kind == "request"]
    approvals = [e for e in events if e.kind == "approve"]
    assert len(approvals) == len(requests) - 1
    for spec in world.MODELS:
        assert spec.actor.name != world.APPROVER.name
    waiting = [r for s in world.MODELS for r in s.releases if not r.approved]
    assert [(r.version) for r in waiting] == ["1.5.0"]


def test_exactly_one_rollback_in_production_with_a_reason() -> None:
    rollbacks = [e for e in world.timeline() if e.kind == "rollback"]
    assert len(rollbacks) == 1
    assert rollbacks[0].extra["environment"] == world.PRODUCTION
    assert "latency" in rollbacks[0].reason


def test_the_timeline_is_ordered_and_inside_the_history() -> None:
    days = [e.day for e in world.timeline()]
    assert days == sorted(days)
    assert 0 <= days[0] and days[-1] < world.DAYS


def test_no_rollout_in_the_gpu_backfill_window() -> None:
    """The backfill samples today's pods for the last three days: nothing may change there."""
    last_rollout = max(
        e.day for e in world.timeline() if e.kind in ("staging", "approve", "rollback")
    )
    assert last_rollout < world.DAYS - gpu.BACKFILL.total_seconds() / 86400


def test_the_healthy_model_has_no_planted_problem() -> None:
    troubled = {
        world.DRIFTING_MODEL,
        world.BROKEN_MODEL,
        world.DECAYING_MODEL,
        world.IDLE_GPU_MODEL,
    }
    assert world.HEALTHY_MODEL not in troubled
    assert {m.name for m in world.MODELS} == troubled | {world.HEALTHY_MODEL}


def test_the_demo_config_is_valid_settings(tmp_path: Path) -> None:
    settings = Settings(
        **world.config(
            str(tmp_path),
            api_port=8123,
            dashboard_port=8600,
            prometheus_url="http://127.0.0.1:9999",
        )
    )
    assert settings.api.port == 8123
    assert settings.dashboard_url == "http://127.0.0.1:8600"
    assert settings.prometheus.url == "http://127.0.0.1:9999"
    assert {e.name for e in settings.environments} == {"staging", "production"}
    production = next(e for e in settings.environments if e.name == "production")
    assert production.approvals_required == 1 and production.requires_previous == "staging"
    assert {c.gpu_model for c in settings.clusters} == {"A100", "L4"}
    assert settings.checks.window_minutes == world.CHECK_WINDOW_MINUTES
    without = Settings(
        **world.config(str(tmp_path), api_port=1, dashboard_port=2, prometheus_url=None)
    )
    assert without.prometheus.url is None
