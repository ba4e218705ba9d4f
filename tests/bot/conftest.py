"""The bot under test: a seeded database, the fake Slack Web API, and the bot served over HTTP
by uvicorn with bolt's signature verification on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.bot.app import create_app
from modeldeck.bot.server import http_app
from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Severity
from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.notify import service as notify
from modeldeck.core.notify.models import DrainReport
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.tables import metadata
from tests.bot.slack import SIGNING_SECRET, SlackWorkspace
from tests.conftest import make_settings
from tests.utils.fake_slack import FakeSlack
from tests.utils.servers import serve_asgi

ADMIN, APPROVER, APPROVER2 = "U0ALICE", "U0BOB", "U0FRANK"
DEPLOYER, VIEWER, NOBODY, GROUPIE = "U0CAROL", "U0DAVE", "U0ERIN", "U0GRACE"
APPROVER_GROUP = "S0APPROVERS"
OPS, RANDOM, APPROVALS, ALERTS = "C0OPS", "C0RANDOM", "C0APPROVALS", "C0ALERTS"
DASHBOARD = "https://dash.example.org"

SEED = Actor(name="cli:seed", role=Role.admin, via="cli")
SEED_APPROVER = Actor(name="cli:seed-approver", role=Role.approver, via="cli")


def bot_settings(tmp_path: Path, fake: FakeSlack, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "dashboard_url": DASHBOARD,
        "environments": [
            {"name": "staging", "cluster": "gpu-l4", "namespace": "ml-staging", "aliases": ["stg"]},
            {
                "name": "production",
                "cluster": "gpu-a100",
                "namespace": "ml-prod",
                "aliases": ["prod"],
                "requires_previous": "staging",
                "approvals_required": 1,
                "slack_channels": [OPS, ALERTS],
            },
        ],
        "slack": {
            "bot_token": fake.token,
            "signing_secret": SIGNING_SECRET,
            "api_url": fake.url,
            "mode": "http",
            "approval_channel": APPROVALS,
            "alert_channel": ALERTS,
        },
        "roles": {
            "slack_users": {
                ADMIN: "admin",
                APPROVER: "approver",
                APPROVER2: "approver",
                DEPLOYER: "deployer",
                VIEWER: "viewer",
            },
            "slack_groups": {APPROVER_GROUP: "approver"},
        },
    }
    data.update(overrides)
    return make_settings(tmp_path, **data)


def seed_world(engine: Engine, settings: Settings) -> None:
    """fraud-detector: 1.1.0 in production (1.0.0 before it), 1.2.0 in staging, 1.3.0 new;
    churn-model: registered, never deployed."""
    with Session(engine, expire_on_commit=False) as session:
        environments.sync(session, settings)
        for version in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"):
            registry.register_version(
                session,
                model_name="fraud-detector",
                actor=SEED,
                data=ModelVersionCreate(
                    version=version,
                    image=f"registry.example.org/fraud-detector:{version}",
                    metrics={"auc": 0.9},
                ),
                create_model_if_missing=ModelCreate(name="fraud-detector", team="risk"),
            )
        registry.register_version(
            session,
            model_name="churn-model",
            actor=SEED,
            data=ModelVersionCreate(
                version="2.0.0", image="registry.example.org/churn-model:2.0.0"
            ),
            create_model_if_missing=ModelCreate(name="churn-model"),
        )
        for version in ("1.0.0", "1.1.0"):
            deploy(session, settings, "fraud-detector", version, "staging")
            deploy(session, settings, "fraud-detector", version, "production")
        deploy(session, settings, "fraud-detector", "1.2.0", "staging")


def deploy(session: Session, settings: Settings, model: str, version: str, env: str) -> None:
    dep = rollouts.promote(
        session,
        settings=settings,
        model=model,
        version=version,
        environment=env,
        actor=SEED,
        reason="seed",
    )
    if dep.state == "awaiting_approval":
        dep = rollouts.approve(
            session, settings=settings, deployment_id=dep.id, actor=SEED_APPROVER
        )
    assert dep.state == "active", dep


@dataclass
class Bot:
    """The running bot and everything around it."""

    url: str
    settings: Settings
    engine: Engine
    fake: FakeSlack
    slack: SlackWorkspace

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table but the audit log: "the database is unchanged"."""
        present = set(inspect(self.engine).get_table_names())
        with self.engine.connect() as conn:
            return {
                t.name: [tuple(r) for r in conn.execute(sa_select(t)).all()]
                for t in metadata.sorted_tables
                if t.name in present and t.name != "audit_event"
            }

    def audit(self, action: str | None = None) -> list[AuditEvent]:
        with self.session() as session:
            query = select(AuditEvent).order_by(col(AuditEvent.id))
            if action:
                query = query.where(AuditEvent.action == action)
            return list(session.exec(query).all())


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.usergroups = [
            {"id": APPROVER_GROUP, "users": [GROUPIE]},
            {"id": "S0OTHER", "users": [VIEWER]},
        ]
        yield fake


@pytest.fixture
def settings(tmp_path: Path, fake_slack: FakeSlack) -> Settings:
    return bot_settings(tmp_path, fake_slack)


@pytest.fixture
def bot(settings: Settings, sqlite_engine: Engine, fake_slack: FakeSlack) -> Iterator[Bot]:
    seed_world(sqlite_engine, settings)
    app = create_app(settings, sqlite_engine, http=True)
    with serve_asgi(http_app(app)) as url:
        workspace = SlackWorkspace(url, fake_slack)
        try:
            yield Bot(
                url=url, settings=settings, engine=sqlite_engine, fake=fake_slack, slack=workspace
            )
        finally:
            workspace.close()


def fire_alert(
    bot: Bot,
    *,
    model: str = "fraud-detector",
    version: str = "1.1.0",
    env: str = "production",
    rule: str = "drift",
    clock: Clock = utcnow,
) -> int:
    """Fire an alert through the alerts service (it queues the Slack message); its id."""
    with bot.session() as session:
        m = registry.get_model(session, model)
        v = registry.get_version(session, m, version)
        e = environments.get(session, env)
        alert = alerts.fire(
            session,
            settings=bot.settings,
            rule=rule,
            severity=Severity.critical,
            summary=f"input drift on {model} {version}: 4 of 10 columns",
            details={
                "metric": "share of drifted columns",
                "value": 0.4,
                "threshold": 0.3,
                "window": "1h",
                "drifted_columns": ["amount", "merchant", "country"],
            },
            model_id=m.id,
            version_id=v.id,
            environment_id=e.id,
            clock=clock,
        )
        assert alert.id is not None
        return alert.id


def drain(bot: Bot, clock: Clock = utcnow) -> DrainReport:
    """One pass of the outbox (what the scheduler runs every few seconds)."""
    with bot.session() as session:
        return notify.drain(session, settings=bot.settings, clock=clock)
