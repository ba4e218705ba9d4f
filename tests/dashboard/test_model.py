"""Model page: history and lineage match the database; promote, roll back, approve go through
the rollouts service with a confirmation; viewers see no buttons and the service refuses
crafted requests."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.alerts import service as alerts_service
from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.config import Settings
from modeldeck.core.errors import Forbidden
from modeldeck.core.registry.models import Model
from modeldeck.core.rollouts import queries as rollout_queries
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment, DeploymentPublic
from tests.dashboard.conftest import button, labels, metric, open_page, texts
from tests.dashboard.world import World

FRAUD = {"model": "fraud-detector"}
SEARCH = {"model": "search-ranker"}
ACTIONS = {"Promote…", "Roll back…", "Approve", "Reject", "Withdraw"}


def deployments(engine: Engine, model: str) -> list[Deployment]:
    with Session(engine) as s:
        return list(
            s.exec(
                select(Deployment)
                .join(Model, col(Model.id) == Deployment.model_id)
                .where(Model.name == model)
                .order_by(col(Deployment.id))
            ).all()
        )


def test_history_lineage_and_where_it_runs(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("model", state=FRAUD)
    assert at.title[0].value == "fraud-detector"
    assert metric(at, "staging") == "1.0.0"  # rolled back from 1.1.0
    assert metric(at, "production") == "1.1.0"
    with Session(sqlite_engine) as s:
        history = rollout_queries.history(s, model="fraud-detector").data
    shown = {df.value.columns[0]: df.value for df in at.dataframe}
    table = shown["#"]
    assert list(table["#"]) == [d.id for d in history]
    assert list(table["Version"]) == [d.version for d in history]
    assert "rolled back" in set(table["State"])
    assert set(table[table["Environment"] == "production"]["Approvals"]) == {"1/1"}
    lineage = shown["Version"]
    assert list(lineage["Version"]) == ["1.1.0", "1.0.0"]
    row = lineage.iloc[0]
    assert row["Image"] == "ghcr.io/acme/fraud-detector:1.1.0"
    assert row["Data fingerprint"] == "sha256:fraud-detector-1.1.0"
    assert row["Metrics"] == "accuracy=0.96, auc=0.94"
    assert row["Runs in"] == "production"
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = [t for t in chart["data"] if t["type"] == "bar"]
    assert {t["name"] for t in bars} == {"1.0.0", "1.1.0"}
    assert [t for t in chart["data"] if t["type"] == "scatter"], "rollback marker missing"


@pytest.mark.parametrize(
    "who",
    [
        {},
        {"login": False},
        {"email": "viewer@acme.io"},
        {"email": "stranger@elsewhere.io"},
        {"email": "deployer@acme.io", "verified": False},
    ],
)
def test_no_action_buttons_without_a_deployer_role(seeded: World, who: dict[str, object]) -> None:
    at = open_page("model", state=FRAUD, **who)
    assert not ACTIONS & set(labels(at)), labels(at)
    assert "need a deployer or approver role" in texts(at)


def test_deployer_promotes_after_confirming(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("model", state=SEARCH, email="deployer@acme.io")
    assert "Promote…" in labels(at) and "Roll back…" not in labels(at)  # nothing runs yet
    at.selectbox(key="promote_env").set_value("staging")
    at.text_input(key="promote_reason").input("first rollout")
    button(at, "Promote…").click().run()
    assert deployments(sqlite_engine, "search-ranker") == []  # nothing before confirming
    assert "Promote **search-ranker 3.1.0** to **staging**" in texts(at)
    button(at, "Confirm promote").click().run()
    [dep] = deployments(sqlite_engine, "search-ranker")
    assert (dep.state, dep.requested_by, dep.requested_via, dep.reason) == (
        "active",
        "dashboard:deployer@acme.io",
        "dashboard",
        "first rollout",
    )
    assert f"deployment #{dep.id} is active" in texts(at)
    with Session(sqlite_engine) as s:
        event = s.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "deployment.promote")
            .order_by(col(AuditEvent.id).desc())
        ).first()
    assert event is not None and (event.actor, event.via) == (
        "dashboard:deployer@acme.io",
        "dashboard",
    )


def test_cancel_changes_nothing(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("model", state=SEARCH, email="deployer@acme.io")
    at.selectbox(key="promote_env").set_value("staging")
    button(at, "Promote…").click().run()
    button(at, "Cancel").click().run()
    assert deployments(sqlite_engine, "search-ranker") == []
    assert "Promote…" in labels(at)


def test_policy_is_the_services(seeded: World, sqlite_engine: Engine) -> None:
    """Production needs staging first: the dashboard shows the service's refusal."""
    at = open_page("model", state=SEARCH, email="deployer@acme.io")
    at.selectbox(key="promote_env").set_value("production")
    button(at, "Promote…").click().run()
    assert "needs 1 approval(s) from someone other than you" in texts(at)
    button(at, "Confirm promote").click().run()
    assert "Promote refused" in texts(at)
    assert "has not been active in staging" in texts(at)
    assert deployments(sqlite_engine, "search-ranker") == []


def test_two_person_rule_from_the_dashboard(seeded: World, sqlite_engine: Engine) -> None:
    settings = seeded.settings
    dep = _request_production(sqlite_engine, settings)
    # The requester sees Withdraw, never Approve.
    at = open_page("model", state=SEARCH, email="deployer@acme.io")
    assert "Approve" not in labels(at) and "Withdraw" in labels(at)
    # An approver who is someone else approves; the rollout completes.
    at = open_page("model", state=SEARCH, email="approver@acme.io")
    button(at, "Approve").click().run()
    with Session(sqlite_engine) as s:
        row = s.get(Deployment, dep.id)
        assert row is not None and row.state == "active"
    assert "Approve: deployment" in texts(at)


def test_requester_cannot_approve_even_by_crafted_call(
    seeded: World, sqlite_engine: Engine
) -> None:
    dep = _request_production(
        sqlite_engine,
        seeded.settings,
        actor=Actor("dashboard:approver@acme.io", Role.approver, "dashboard"),
    )
    with Session(sqlite_engine) as s, pytest.raises(Forbidden, match="two-person rule"):
        rollouts.approve(
            s,
            settings=seeded.settings,
            deployment_id=dep.id,
            actor=Actor("dashboard:approver@acme.io", Role.approver, "dashboard"),
        )
    with Session(sqlite_engine) as s:
        row = s.get(Deployment, dep.id)
        assert row is not None and row.state == "awaiting_approval"


@pytest.mark.parametrize("role", [None, Role.viewer])
def test_service_refuses_a_crafted_request(
    seeded: World, sqlite_engine: Engine, role: Role | None
) -> None:
    """A user without the deployer role who forges the button's request is refused by the
    services themselves, and nothing changes."""
    actor = Actor(name="dashboard:mallory@acme.io", role=role, via="dashboard")
    with Session(sqlite_engine) as s:
        before = (
            s.exec(select(func.count()).select_from(Deployment)).one(),
            s.exec(select(func.count()).select_from(AuditEvent)).one(),
        )
        with pytest.raises(Forbidden):
            rollouts.promote(
                s,
                settings=seeded.settings,
                model="search-ranker",
                version="3.1.0",
                environment="staging",
                actor=actor,
            )
        with pytest.raises(Forbidden):
            rollouts.rollback(
                s,
                settings=seeded.settings,
                model="fraud-detector",
                environment="production",
                actor=actor,
            )
        with pytest.raises(Forbidden):
            alerts_service.snooze(
                s,
                settings=seeded.settings,
                alert_id=seeded.alerts["drift"],
                duration=alerts_service.parse_duration("1h"),
                actor=actor,
            )
        with pytest.raises(Forbidden):
            alerts_service.resolve_by(
                s, settings=seeded.settings, alert_id=seeded.alerts["drift"], actor=actor
            )
    with Session(sqlite_engine) as s:
        after = (
            s.exec(select(func.count()).select_from(Deployment)).one(),
            s.exec(select(func.count()).select_from(AuditEvent)).one(),
        )
    assert after == before


def test_deployer_rolls_back(seeded: World, sqlite_engine: Engine) -> None:
    at = open_page("model", state=FRAUD, email="deployer@acme.io")
    at.selectbox(key="rollback_env").set_value("production").run()
    assert at.selectbox(key="rollback_to_production").options == ["previous good version", "1.0.0"]
    at.text_input(key="rollback_reason").input("drift on amount")
    button(at, "Roll back…").click().run()
    assert "Roll back **fraud-detector** in **production** from 1.1.0" in texts(at)
    button(at, "Confirm rollback").click().run()
    last = deployments(sqlite_engine, "fraud-detector")[-1]
    assert (last.kind, last.state, last.requested_by, last.reason) == (
        "rollback",
        "active",
        "dashboard:deployer@acme.io",
        "drift on amount",
    )
    assert metric(at, "production") == "1.0.0"  # caches cleared after the change


def test_a_stale_rollback_confirmation_changes_nothing(
    seeded: World, sqlite_engine: Engine
) -> None:
    """The confirmation says what the service planned; if someone else rolls the environment
    back before it is confirmed, confirming is refused and nothing changes."""
    at = open_page("model", state=FRAUD, email="deployer@acme.io")
    at.selectbox(key="rollback_env").set_value("production").run()
    button(at, "Roll back…").click().run()
    assert "from 1.1.0 to **1.0.0**" in texts(at) and "needs no approval" in texts(at)
    with Session(sqlite_engine) as s:  # a colleague, meanwhile, through another interface
        rollouts.rollback(
            s,
            settings=seeded.settings,
            model="fraud-detector",
            environment="production",
            actor=Actor("slack:U0OTHER", Role.deployer, "slack"),
        )
    before = [(d.id, d.state) for d in deployments(sqlite_engine, "fraud-detector")]
    button(at, "Confirm rollback").click().run()
    assert [(d.id, d.state) for d in deployments(sqlite_engine, "fraud-detector")] == before
    assert "changed since you asked" in texts(at)


def test_a_refused_rollback_plan_opens_no_confirmation(
    seeded: World, sqlite_engine: Engine
) -> None:
    """Once production is back on its first version there is nothing earlier to go back to:
    the plan is refused at once with the service's reason, and no Confirm button appears."""
    at = open_page("model", state=FRAUD, email="deployer@acme.io")
    at.selectbox(key="rollback_env").set_value("production").run()
    with Session(sqlite_engine) as s:  # 1.1.0 → 1.0.0, the first version it ever ran
        rollouts.rollback(
            s,
            settings=seeded.settings,
            model="fraud-detector",
            environment="production",
            actor=Actor("slack:U0OTHER", Role.deployer, "slack"),
        )
    before = len(deployments(sqlite_engine, "fraud-detector"))
    at.run()
    at.selectbox(key="rollback_env").set_value("production").run()
    button(at, "Roll back…").click().run()
    assert "Confirm rollback" not in labels(at)
    assert "Rollback refused" in texts(at)
    assert len(deployments(sqlite_engine, "fraud-detector")) == before


def _request_production(
    engine: Engine, settings: Settings, actor: Actor | None = None
) -> DeploymentPublic:
    """search-ranker 3.1.0: staging, then a production request awaiting approval."""
    actor = actor or Actor("dashboard:deployer@acme.io", Role.deployer, "dashboard")
    with Session(engine) as s:
        rollouts.promote(
            s,
            settings=settings,
            model="search-ranker",
            version="3.1.0",
            environment="staging",
            actor=actor,
        )
        dep = rollouts.promote(
            s,
            settings=settings,
            model="search-ranker",
            version="3.1.0",
            environment="production",
            actor=actor,
        )
    assert dep.state == "awaiting_approval"
    return dep


def test_rollback_targets_newest_first_not_as_text(seeded: World, sqlite_engine: Engine) -> None:
    """1.10.0 is newer than 1.9.0: the targets follow registration, never string order."""
    from datetime import timedelta

    from tests.dashboard import world

    start = seeded.now - timedelta(days=10)
    with Session(sqlite_engine, expire_on_commit=False) as s:
        for i, version in enumerate(("1.2.0", "1.9.0", "1.10.0", "1.11.0")):
            at = start + timedelta(days=2 * i)
            world.register(s, "ranker", "search", version, {"auc": 0.9}, at)
            world.promote(s, seeded.settings, "ranker", version, "staging", at + timedelta(hours=1))
    at = open_page("model", state={"model": "ranker"}, email="deployer@acme.io")
    at.selectbox(key="rollback_env").set_value("staging").run()
    assert at.selectbox(key="rollback_to_staging").options == [
        "previous good version",
        "1.10.0",
        "1.9.0",
        "1.2.0",
    ]
