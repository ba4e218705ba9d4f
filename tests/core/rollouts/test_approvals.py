from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Severity
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import Conflict, Forbidden, NotFound
from modeldeck.core.notify.models import OutboxMessage
from modeldeck.core.registry import service as registry
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import DeploymentPublic
from tests.conftest import make_settings
from tests.core.rollouts.world import live, register, snapshot


@pytest.fixture
def waiting(
    session: Session,
    settings: Settings,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
) -> DeploymentPublic:
    """carol asks for fraud 1.0.0 in production (it ran in staging); one approval needed."""
    register(session, admin)
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    return rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )


def test_the_requester_can_never_approve_their_own_request(
    session: Session, settings: Settings, waiting: DeploymentPublic, clock: FixedClock
) -> None:
    before = snapshot(session)
    carol_as_admin = Actor(name="carol", role=Role.admin, via="slack")
    with pytest.raises(
        Forbidden,
        match=r"carol requested deployment #\d+ and cannot approve it \(two-person rule\)",
    ):
        rollouts.approve(
            session, settings=settings, deployment_id=waiting.id, actor=carol_as_admin, clock=clock
        )
    assert snapshot(session) == before


@pytest.mark.parametrize("role", [Role.viewer, Role.deployer])
def test_only_approvers_may_approve(
    session: Session, settings: Settings, waiting: DeploymentPublic, clock: FixedClock, role: Role
) -> None:
    before = snapshot(session)
    with pytest.raises(Forbidden, match=f"needs the approver role; erin is {role}"):
        rollouts.approve(
            session,
            settings=settings,
            deployment_id=waiting.id,
            actor=Actor(name="erin", role=role, via="api"),
            clock=clock,
        )
    assert snapshot(session) == before


def test_unknown_deployment(
    session: Session,
    settings: Settings,
    approver: Actor,
    waiting: DeploymentPublic,
    clock: FixedClock,
) -> None:
    with pytest.raises(NotFound, match="no deployment with id 999"):
        rollouts.approve(session, settings=settings, deployment_id=999, actor=approver, clock=clock)


def test_double_approval_is_refused(
    session: Session,
    tmp_path: Path,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
) -> None:
    settings = make_settings(tmp_path)
    settings.environments[1].approvals_required = 2
    environments.sync(session, settings)
    register(session, admin)
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    once = rollouts.approve(
        session, settings=settings, deployment_id=dep.id, actor=approver, clock=clock
    )
    assert once.state == "awaiting_approval" and len(once.approvals) == 1
    before = snapshot(session)
    with pytest.raises(Conflict, match="bob already decided on deployment"):
        rollouts.approve(
            session, settings=settings, deployment_id=dep.id, actor=approver, clock=clock
        )
    assert snapshot(session) == before
    second = rollouts.approve(
        session,
        settings=settings,
        deployment_id=dep.id,
        actor=Actor(name="frank", role=Role.approver, via="slack"),
        clock=clock,
    )
    assert second.state == "active"
    assert [a.approver for a in second.approvals] == ["bob", "frank"]


def test_reject_finishes_the_request_and_it_can_no_longer_be_approved(
    session: Session,
    settings: Settings,
    approver: Actor,
    waiting: DeploymentPublic,
    clock: FixedClock,
) -> None:
    rejected = rollouts.reject(
        session,
        settings=settings,
        deployment_id=waiting.id,
        actor=approver,
        comment="wait for the drift fix",
        clock=clock,
    )
    assert rejected.state == "rejected" and rejected.finished_at == clock()
    assert rejected.message == "rejected by bob: wait for the drift fix"
    kinds = session.exec(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all()
    assert kinds == ["approval_request", "deployment_update"]
    before = snapshot(session)
    other = Actor(name="frank", role=Role.approver, via="slack")
    with pytest.raises(Conflict, match="is rejected; only a rollout awaiting approval"):
        rollouts.approve(
            session, settings=settings, deployment_id=waiting.id, actor=other, clock=clock
        )
    with pytest.raises(Conflict, match="is rejected"):
        rollouts.reject(
            session, settings=settings, deployment_id=waiting.id, actor=other, clock=clock
        )
    assert snapshot(session) == before


def test_approving_a_finished_request_is_a_conflict(
    session: Session,
    settings: Settings,
    approver: Actor,
    waiting: DeploymentPublic,
    clock: FixedClock,
) -> None:
    done = rollouts.approve(
        session, settings=settings, deployment_id=waiting.id, actor=approver, clock=clock
    )
    assert done.state == "active"
    before = snapshot(session)
    with pytest.raises(Conflict, match="is active; only a rollout awaiting approval"):
        rollouts.approve(
            session,
            settings=settings,
            deployment_id=waiting.id,
            actor=Actor(name="frank", role=Role.approver, via="api"),
            clock=clock,
        )
    assert snapshot(session) == before


def test_the_requester_may_withdraw_but_another_deployer_may_not_reject(
    session: Session,
    settings: Settings,
    deployer: Actor,
    waiting: DeploymentPublic,
    clock: FixedClock,
) -> None:
    before = snapshot(session)
    with pytest.raises(Forbidden, match="needs the approver role"):
        rollouts.reject(
            session,
            settings=settings,
            deployment_id=waiting.id,
            actor=Actor(name="gus", role=Role.deployer, via="cli"),
            clock=clock,
        )
    assert snapshot(session) == before
    withdrawn = rollouts.reject(
        session, settings=settings, deployment_id=waiting.id, actor=deployer, clock=clock
    )
    assert withdrawn.state == "rejected" and withdrawn.message == "withdrawn by carol"


def test_after_a_rejection_a_new_request_may_be_made(
    session: Session,
    settings: Settings,
    deployer: Actor,
    approver: Actor,
    waiting: DeploymentPublic,
    clock: FixedClock,
) -> None:
    rollouts.reject(
        session, settings=settings, deployment_id=waiting.id, actor=approver, clock=clock
    )
    again = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    assert again.state == "awaiting_approval" and again.id != waiting.id


PEOPLE = {
    "ana": {
        "slack": ["U01ANA"],
        "emails": ["Ana@Acme.io"],
        "tokens": ["ana-laptop"],
        "cli": ["ana"],
    },
    "ben": {"slack": ["U01BEN"], "cli": ["ben"]},
}


@pytest.fixture
def people(tmp_path: Path, session: Session, admin: Actor, approver: Actor) -> Settings:
    """Production needs two approvals; ana and ben each act through several interfaces."""
    settings = make_settings(tmp_path, roles={"people": PEOPLE})
    settings.environments[1].approvals_required = 2
    environments.sync(session, settings)
    register(session, admin)
    return settings


def test_one_person_cannot_approve_through_another_interface(
    session: Session, people: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> None:
    live(session, people, clock, deployer, approver, "1.0.0", "staging")
    asked = rollouts.promote(
        session,
        settings=people,
        model="fraud",
        version="1.0.0",
        environment="production",
        actor=Actor(name="token:ana-laptop", role=Role.approver, via="api"),
        clock=clock,
    )
    before = snapshot(session)
    for name, via in (("slack:U01ANA", "slack"), ("dashboard:ana@acme.io", "dashboard")):
        with pytest.raises(
            Forbidden,
            match=rf"{name} is ana, who requested deployment #{asked.id} as token:ana-laptop, "
            r"and cannot approve it \(two-person rule\)",
        ):
            rollouts.approve(
                session,
                settings=people,
                deployment_id=asked.id,
                actor=Actor(name=name, role=Role.admin, via=via),
                clock=clock,
            )
    assert snapshot(session) == before
    # Withdrawing one's own request works from any of one's interfaces (deployer is enough).
    withdrawn = rollouts.reject(
        session,
        settings=people,
        deployment_id=asked.id,
        actor=Actor(name="cli:ana", role=Role.deployer, via="cli"),
        clock=clock,
    )
    assert withdrawn.message == "withdrawn by cli:ana"


def test_one_person_decides_once_whatever_interface_they_use(
    session: Session, people: Settings, deployer: Actor, approver: Actor, clock: FixedClock
) -> None:
    live(session, people, clock, deployer, approver, "1.0.0", "staging")
    asked = rollouts.promote(
        session,
        settings=people,
        model="fraud",
        version="1.0.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    once = rollouts.approve(
        session,
        settings=people,
        deployment_id=asked.id,
        actor=Actor(name="slack:U01BEN", role=Role.approver, via="slack"),
        clock=clock,
    )
    assert once.state == "awaiting_approval"
    before = snapshot(session)
    with pytest.raises(Conflict, match=r"ben \(as slack:U01BEN\) already decided on deployment"):
        rollouts.approve(
            session,
            settings=people,
            deployment_id=asked.id,
            actor=Actor(name="cli:ben", role=Role.approver, via="cli"),
            clock=clock,
        )
    assert snapshot(session) == before
    done = rollouts.approve(
        session,
        settings=people,
        deployment_id=asked.id,
        actor=Actor(name="slack:U01ANA", role=Role.approver, via="slack"),
        clock=clock,
    )
    assert done.state == "active"


def test_approval_rechecks_requires_previous_and_the_pause(
    session: Session,
    settings: Settings,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
) -> None:
    register(session, admin)
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    live(session, settings, clock, deployer, approver, "1.1.0", "staging")
    asked = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.1.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    # While it waits, 1.1.0 turns out bad in staging and is rolled back there.
    rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    before = snapshot(session)
    with pytest.raises(Conflict, match="fraud 1.1.0 cannot go to production: it was rolled back"):
        rollouts.approve(
            session, settings=settings, deployment_id=asked.id, actor=approver, clock=clock
        )
    assert snapshot(session) == before
    rollouts.reject(session, settings=settings, deployment_id=asked.id, actor=deployer, clock=clock)
    asked = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    model = registry.get_model(session, "fraud")
    env = environments.get(session, "production")
    alert = alerts.fire(
        session,
        settings=settings,
        rule="drift",
        severity=Severity.critical,
        summary="drift on amount",
        details={},
        model_id=model.id,
        environment_id=env.id,
        pauses_promotions=True,
        clock=clock,
    )
    session.commit()
    before = snapshot(session)
    with pytest.raises(Conflict, match=f"paused by alert {alert.id}"):
        rollouts.approve(
            session, settings=settings, deployment_id=asked.id, actor=approver, clock=clock
        )
    assert snapshot(session) == before


def test_a_version_rolled_back_in_staging_cannot_be_promoted_to_production(
    session: Session,
    settings: Settings,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
) -> None:
    register(session, admin)
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    live(session, settings, clock, deployer, approver, "1.1.0", "staging")
    rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    before = snapshot(session)
    with pytest.raises(Conflict, match="it was rolled back in staging") as exc:
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.1.0",
            environment="production",
            actor=deployer,
            clock=clock,
        )
    assert exc.value.hint == "promote a version that runs well in staging"
    assert snapshot(session) == before
    # 1.0.0 ran in staging and was replaced by a newer promotion, not rolled back: it may go.
    ok = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    assert ok.state == "awaiting_approval"
