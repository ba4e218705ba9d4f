"""Environments are synced from the config: created, updated, deactivated (never deleted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.clock import FixedClock, as_utc
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import NotFound
from tests.conftest import make_settings
from tests.utils.rows import snapshot


@pytest.fixture
def session(any_engine: Engine) -> Iterator[Session]:
    with Session(any_engine, expire_on_commit=False) as s:
        yield s


def actions(session: Session) -> list[tuple[str, str]]:
    return [(e.action, e.target) for e in session.exec(select(AuditEvent).order_by(AuditEvent.id))]


def with_envs(tmp_path: Path, *envs: dict[str, Any]) -> Settings:
    return make_settings(tmp_path, environments=list(envs))


def test_first_sync_creates_every_environment(
    session: Session, settings: Settings, clock: FixedClock
) -> None:
    rows = environments.sync(session, settings, clock=clock)
    assert [r.name for r in rows] == ["production", "staging"]
    prod = environments.get(session, "production")
    assert (prod.cluster, prod.namespace, prod.backend, prod.gpu_model) == (
        "gpu-a100",
        "ml-prod",
        "simulated",
        "A100",
    )
    assert prod.requires_previous == "staging" and prod.approvals_required == 1
    assert prod.auto_rollback and prod.active and as_utc(prod.updated_at) == clock()
    assert prod.target_name("fraud") == "fraud"
    assert actions(session) == [
        ("environment.sync", "env:staging"),
        ("environment.sync", "env:production"),
    ]
    (event,) = [e for e in session.exec(select(AuditEvent)) if e.target == "env:production"]
    assert event.actor == "modeldeck" and event.via == "auto" and event.before is None


def test_unchanged_config_changes_nothing(
    any_engine: Engine, session: Session, settings: Settings
) -> None:
    environments.sync(session, settings)
    before = snapshot(any_engine)
    environments.sync(session, settings)
    assert snapshot(any_engine) == before


def test_changed_environment_is_updated_with_before_and_after(
    session: Session, tmp_path: Path, clock: FixedClock
) -> None:
    environments.sync(session, make_settings(tmp_path), clock=clock)
    clock.advance(hours=1)
    changed = with_envs(
        tmp_path,
        {"name": "staging", "cluster": "gpu-l4", "namespace": "ml-staging-2"},
        {
            "name": "production",
            "cluster": "gpu-a100",
            "namespace": "ml-prod",
            "requires_previous": "staging",
            "approvals_required": 2,
            "auto_rollback": True,
            "target": "{model}-predictor",
        },
    )
    environments.sync(session, changed, clock=clock)
    prod = environments.get(session, "production")
    assert prod.approvals_required == 2 and prod.target_name("fraud") == "fraud-predictor"
    assert as_utc(prod.updated_at) == clock()
    assert environments.get(session, "staging").namespace == "ml-staging-2"
    updates = session.exec(
        select(AuditEvent).where(AuditEvent.id > 2).order_by(AuditEvent.id)
    ).all()
    assert [e.target for e in updates] == ["env:staging", "env:production"]
    assert updates[0].before is not None and updates[0].before["namespace"] == "ml-staging"
    assert updates[0].after is not None and updates[0].after["namespace"] == "ml-staging-2"


def test_removed_environment_is_deactivated_not_deleted_and_comes_back(
    session: Session, tmp_path: Path
) -> None:
    environments.sync(session, make_settings(tmp_path))
    only_staging = with_envs(tmp_path, {"name": "staging", "cluster": "gpu-l4"})
    environments.sync(session, only_staging)
    row = session.exec(select(Environment).where(Environment.name == "production")).one()
    assert row.active is False
    with pytest.raises(NotFound, match="no environment named 'production'") as info:
        environments.get(session, "production")
    assert info.value.hint == "known: staging"
    assert [e.name for e in environments.list_environments(session).data] == ["staging"]
    everything = environments.list_environments(session, include_inactive=True)
    assert everything.count == 2
    assert actions(session)[-1] == ("environment.deactivate", "env:production")
    environments.sync(session, make_settings(tmp_path))
    assert environments.get(session, "production").active


def test_aliases_and_case_resolve_to_the_configured_name(settings: Settings) -> None:
    assert environments.resolve_name(settings, "prod") == "production"
    assert environments.resolve_name(settings, " Production ") == "production"
    assert environments.resolve_name(settings, "STG") == "staging"
    assert environments.resolve_name(settings, "qa") == "qa"  # unknown: get() will say so


def test_unknown_environment_lists_the_known_ones(session: Session, settings: Settings) -> None:
    environments.sync(session, settings)
    with pytest.raises(NotFound) as info:
        environments.get(session, "qa")
    assert info.value.hint == "known: production, staging"


def test_nothing_configured(session: Session, tmp_path: Path) -> None:
    environments.sync(session, with_envs(tmp_path))
    with pytest.raises(NotFound) as info:
        environments.get(session, "staging")
    assert info.value.hint == "none is configured"
