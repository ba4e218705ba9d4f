"""Promote and roll back through the service onto the fake Kubernetes API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.errors import BackendUnavailable
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment
from tests.conftest import make_settings
from tests.core.rollouts.world import register, snapshot
from tests.utils.fake_k8s import DEPLOYMENT, FakeKubernetes, write_kubeconfig


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        server.add_deployment(
            "ml-staging", "fraud", image="ghcr.io/acme/fraud:0.9.0", version="0.9.0"
        )
        yield server


@pytest.fixture
def settings(tmp_path: Path, fake: FakeKubernetes) -> Settings:
    """Staging runs on a Kubernetes cluster (the fake)."""
    config = write_kubeconfig(tmp_path / "kubeconfig", {"gpu-l4": fake})
    return make_settings(
        tmp_path,
        clusters=[
            {
                "name": "gpu-l4",
                "backend": "kubernetes",
                "kubeconfig": str(config),
                "context": "gpu-l4",
                "api_timeout_seconds": 2,
                "rollout_timeout_seconds": 900,
            },
            {"name": "gpu-a100", "backend": "simulated"},
        ],
    )


@pytest.fixture(autouse=True)
def _registry(session: Session, admin: Actor) -> None:
    register(session, admin)


def test_promote_patches_the_deployment_and_advance_makes_it_active(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    fake.set_mode(DEPLOYMENT, "ml-staging", "fraud", "hold")
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert dep.state == "rolling_out"
    assert dep.message == "1 of 2 new replicas have been updated"
    container = fake.get(DEPLOYMENT, "ml-staging", "fraud")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == "ghcr.io/acme/fraud:1.0.0"
    # The cluster ran 0.9.0 that modeldeck never deployed: nothing recorded as active, so no
    # drift note; the audit keeps what ran before.
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "deployment.rollout")).one()
    assert event.after is not None and event.after["cluster_before"]["version"] == "0.9.0"
    fake.finish(DEPLOYMENT, "ml-staging", "fraud")
    clock.advance(seconds=20)
    dep = rollouts.advance(session, settings=settings, deployment_id=dep.id, clock=clock)
    assert dep.state == "active" and dep.activated_at == clock()


def test_cluster_unreachable_fails_cleanly(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    first = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert first.state == "active"
    fake.down()
    before = snapshot(session)
    with pytest.raises(
        BackendUnavailable,
        match="cluster gpu-l4 unreachable.*deployment "
        r"#\d+ is marked failed",
    ) as exc:
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.1.0",
            environment="staging",
            actor=deployer,
            clock=clock,
        )
    assert "Connection refused" in exc.value.message
    after = snapshot(session)
    # Exactly one new row, failed with the reason; the active deployment is untouched.
    new = [r for r in after["deployment"] if r not in before["deployment"]]
    assert len(new) == 1
    failed = session.exec(select(Deployment).where(Deployment.state == "failed")).one()
    assert failed.message.startswith(
        "could not apply to cluster gpu-l4: cluster gpu-l4 unreachable during reading Deployment"
    )
    assert failed.applied_at is None and failed.finished_at is not None
    assert queries.get(session, first.id).state == "active"
    assert [r for r in after["deployment"] if r[0] == first.id] == [
        r for r in before["deployment"] if r[0] == first.id
    ]
    actions = [
        a
        for a in session.exec(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        if a.startswith("deployment.")
    ]
    assert actions[-2:] == ["deployment.promote", "deployment.failed"]
    # The API server is back: a new request goes through.
    fake.up()
    again = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.1.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert again.state == "active"


def test_progress_deadline_exceeded_fails_the_rollout_and_counts_a_stopped_release(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    from prometheus_client import REGISTRY

    def stopped() -> float:
        return (
            REGISTRY.get_sample_value(
                "modeldeck_bad_releases_stopped_total",
                {"environment": "staging", "reason": "rollout_failed"},
            )
            or 0.0
        )

    base = stopped()
    fake.set_mode(DEPLOYMENT, "ml-staging", "fraud", "stuck", deadline=0)
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert dep.state == "failed"
    assert dep.message.startswith('ProgressDeadlineExceeded: ReplicaSet "fraud-')
    assert stopped() == base + 1


def test_api_errors_while_rolling_out_do_not_fail_the_rollout_until_the_timeout(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    fake.set_mode(DEPLOYMENT, "ml-staging", "fraud", "hold")
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    fake.fail_next(1, status=503)
    dep = rollouts.advance(session, settings=settings, deployment_id=dep.id, clock=clock)
    assert dep.state == "rolling_out"
    assert dep.message.startswith("cannot read the rollout status: cluster gpu-l4 failed")
    fake.down()
    clock.advance(seconds=901)
    dep = rollouts.advance(session, settings=settings, deployment_id=dep.id, clock=clock)
    assert dep.state == "failed"
    assert dep.message.startswith("not available within 900s: cannot read the rollout status")


def test_deployment_deleted_by_hand_fails_the_promote_with_a_hint(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    fake.delete(DEPLOYMENT, "ml-staging", "fraud")
    with pytest.raises(BackendUnavailable, match='deployments.apps "fraud" not found') as exc:
        rollouts.promote(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="staging",
            actor=deployer,
            clock=clock,
        )
    assert exc.value.hint and "never creates them" in exc.value.hint
    assert session.exec(select(Deployment.state)).all() == ["failed"]


def test_rollback_on_kubernetes_restores_the_earlier_image(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    for version in ("1.0.0", "1.1.0"):
        assert (
            rollouts.promote(
                session,
                settings=settings,
                model="fraud",
                version=version,
                environment="staging",
                actor=deployer,
                clock=clock,
            ).state
            == "active"
        )
        clock.advance(minutes=10)
    back = rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert back.state == "active" and back.version == "1.0.0"
    obj = fake.get(DEPLOYMENT, "ml-staging", "fraud")
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/fraud:1.0.0"
    assert obj["metadata"]["annotations"]["modeldeck.io/deployment-id"] == str(back.id)


def test_a_failed_rollout_puts_the_active_version_back_on_the_deployment(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    first = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    fake.set_mode(DEPLOYMENT, "ml-staging", "fraud", "stuck", deadline=0)
    bad = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.1.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert bad.state == "failed"
    assert bad.message.endswith(f"; restored 1.0.0 (deployment #{first.id}) on the cluster")
    obj = fake.get(DEPLOYMENT, "ml-staging", "fraud")
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/acme/fraud:1.0.0"
    assert obj["spec"]["template"]["metadata"]["annotations"]["modeldeck.io/deployment-id"] == (
        str(first.id)
    )
    assert rollouts.reconcile(session, settings=settings, clock=clock) == []


def test_a_hand_change_during_the_rollout_is_not_undone(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    fake.set_mode(DEPLOYMENT, "ml-staging", "fraud", "hold")
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.1.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )

    def hotfix(obj: dict[str, Any]) -> None:
        template = obj["spec"]["template"]
        template["spec"]["containers"][0]["image"] = "ghcr.io/acme/fraud:hotfix"
        template["metadata"]["annotations"]["modeldeck.io/deployment-id"] = "kubectl"

    fake.edit(DEPLOYMENT, "ml-staging", "fraud", hotfix)
    dep = rollouts.advance(session, settings=settings, deployment_id=dep.id, clock=clock)
    assert dep.state == "failed" and "changed by someone else" in dep.message
    assert "restored" not in dep.message
    obj = fake.get(DEPLOYMENT, "ml-staging", "fraud")
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/fraud:hotfix"
