from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock
from modeldeck.core.clusters import simulated
from modeldeck.core.clusters.backend import Target
from modeldeck.core.clusters.models import ClusterDrift, SimulatedWorkload
from modeldeck.core.clusters.simulated import SimulatedBackend
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts import service as rollouts
from tests.conftest import make_settings
from tests.core.rollouts.world import live, register
from tests.utils.fake_k8s import DEPLOYMENT, FakeKubernetes, write_kubeconfig

STAGING = {"cluster": "gpu-l4", "namespace": "ml-staging", "name": "fraud"}


@pytest.fixture(autouse=True)
def _staging(
    session: Session,
    settings: Settings,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
) -> None:
    register(session, admin)
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")


def test_nothing_to_report_when_the_cluster_matches(
    session: Session, settings: Settings, clock: FixedClock
) -> None:
    assert rollouts.reconcile(session, settings=settings, clock=clock) == []


def test_a_hand_changed_version_is_recorded_once_counted_and_never_overwritten(
    session: Session, settings: Settings, clock: FixedClock
) -> None:
    simulated.edit_by_hand(session, **STAGING, version="1.0.0-hotfix", clock=clock)
    [finding] = rollouts.reconcile(session, settings=settings, clock=clock)
    assert (finding.kind, finding.expected, finding.observed, finding.new) == (
        "version",
        "1.0.0",
        "1.0.0-hotfix",
        True,
    )
    assert finding.message == (
        "fraud in staging: cluster gpu-l4 runs 1.0.0-hotfix, modeldeck "
        "recorded 1.0.0 (changed outside modeldeck)"
    )
    clock.advance(minutes=15)
    [again] = rollouts.reconcile(session, settings=settings, clock=clock)
    assert again.new is False and again.fingerprint == finding.fingerprint
    row = session.exec(select(ClusterDrift)).one()
    assert row.count == 2 and row.resolved_at is None
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "cluster.drift")).all()
    assert len(events) == 1 and events[0].via == "auto"
    # Never repaired silently: the cluster still runs the hand-made version.
    workload = session.exec(select(SimulatedWorkload)).one()
    assert workload.version == "1.0.0-hotfix"
    status = {r.environment: r.version for r in queries.status(session, model="fraud")}
    assert status["staging"] == "1.0.0"


def test_drift_resolves_when_a_person_promotes_again(
    session: Session, settings: Settings, deployer: Actor, clock: FixedClock
) -> None:
    simulated.edit_by_hand(session, **STAGING, version="1.0.0-hotfix", clock=clock)
    rollouts.reconcile(session, settings=settings, clock=clock)
    dep = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.1.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert dep.state == "active"
    # The promote replaced the hand change on purpose, and says so in the audit log.
    rollout_event = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == "deployment.rollout",
            col(AuditEvent.target).endswith(f"deployment:{dep.id}"),
        )
    ).one()
    assert rollout_event.after is not None
    assert rollout_event.after["message"] == (
        "cluster ran 1.0.0-hotfix instead of 1.0.0 (changed outside modeldeck); replaced by 1.1.0"
    )
    assert rollout_event.after["cluster_before"]["version"] == "1.0.0-hotfix"
    assert rollouts.reconcile(session, settings=settings, clock=clock) == []
    row = session.exec(select(ClusterDrift)).one()
    assert row.resolved_at is not None
    assert session.exec(
        select(AuditEvent).where(AuditEvent.action == "cluster.drift_resolved")
    ).one()


def test_image_changed_by_hand_and_object_deleted(
    session: Session, settings: Settings, clock: FixedClock
) -> None:
    simulated.edit_by_hand(session, **STAGING, image="ghcr.io/evil/fraud:latest", clock=clock)
    [finding] = rollouts.reconcile(session, settings=settings, clock=clock)
    assert (finding.kind, finding.observed) == ("artifact", "ghcr.io/evil/fraud:latest")
    simulated.delete_by_hand(session, **STAGING)
    [finding] = rollouts.reconcile(session, settings=settings, clock=clock)
    assert finding.kind == "missing" and "is gone from cluster gpu-l4" in finding.message
    kinds = {(r.kind, r.resolved_at is None) for r in session.exec(select(ClusterDrift)).all()}
    assert kinds == {("artifact", False), ("missing", True)}


def test_pairs_with_a_rollout_in_flight_are_skipped(
    session: Session, tmp_path: Path, deployer: Actor, clock: FixedClock
) -> None:
    slow = make_settings(tmp_path)
    slow.clusters[0].rollout_seconds = 600
    environments.sync(session, slow)
    simulated.edit_by_hand(session, **STAGING, version="1.0.0-hotfix", clock=clock)
    rollouts.promote(
        session,
        settings=slow,
        model="fraud",
        version="1.1.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert rollouts.reconcile(session, settings=slow, clock=clock) == []


def kubernetes_production(tmp_path: Path, fake: FakeKubernetes) -> Settings:
    """Staging on the simulated cluster, production on the fake Kubernetes API server."""
    config = write_kubeconfig(tmp_path / "kubeconfig", {"k8s": fake})
    return make_settings(
        tmp_path,
        clusters=[
            {"name": "gpu-l4", "backend": "simulated"},
            {
                "name": "gpu-a100",
                "backend": "kubernetes",
                "kubeconfig": str(config),
                "context": "k8s",
                "api_timeout_seconds": 1,
            },
        ],
        environments=[
            {"name": "staging", "cluster": "gpu-l4", "namespace": "ml-staging"},
            {"name": "production", "cluster": "gpu-a100", "namespace": "ml-prod"},
        ],
    )


def test_an_unreachable_cluster_is_reported_and_open_findings_stay_open(
    session: Session, tmp_path: Path, deployer: Actor, clock: FixedClock
) -> None:
    with FakeKubernetes() as fake:
        fake.add_deployment("ml-prod", "churn", image="ghcr.io/acme/churn:1.0.0", version="0.1.0")
        settings = kubernetes_production(tmp_path, fake)
        environments.sync(session, settings)
        register(session, deployer, model="churn", versions=("1.0.0",))
        rollouts.promote(
            session,
            settings=settings,
            model="churn",
            version="1.0.0",
            environment="production",
            actor=deployer,
            clock=clock,
        )
        fake.edit(
            DEPLOYMENT,
            "ml-prod",
            "churn",
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(
                image="ghcr.io/acme/churn:debug"
            ),
        )  # kubectl set image
        [finding] = rollouts.reconcile(session, settings=settings, clock=clock)
        assert (finding.model, finding.kind, finding.observed) == (
            "churn",
            "artifact",
            "ghcr.io/acme/churn:debug",
        )
        fake.down()
        [finding] = rollouts.reconcile(session, settings=settings, clock=clock)
        assert finding.kind == "unreachable" and "Connection refused" in finding.message
        open_rows = session.exec(select(ClusterDrift).where(ClusterDrift.resolved_at == None)).all()  # noqa: E711
        assert [r.kind for r in open_rows] == ["artifact"]


def test_simulated_target_helper(session: Session, settings: Settings, clock: FixedClock) -> None:
    backend = SimulatedBackend(settings.clusters[0], session=session, clock=clock)
    running = backend.running(
        Target(
            cluster="gpu-l4",
            namespace="ml-staging",
            name="fraud",
            model="fraud",
            environment="staging",
        )
    )
    assert running is not None and running.version == "1.0.0"


def test_a_cluster_that_does_not_answer_is_asked_once_per_run(
    session: Session, tmp_path: Path, deployer: Actor, clock: FixedClock
) -> None:
    """A black-holed API server costs connect timeouts per call: one series per run, not one
    per deployment on it (which could outlast the reconcile interval)."""
    models = ("churn", "eta", "risk")
    with FakeKubernetes() as fake:
        for model in models:
            fake.add_deployment("ml-prod", model, image=f"ghcr.io/acme/{model}:0.1.0")
        settings = kubernetes_production(tmp_path, fake)
        environments.sync(session, settings)
        for model in models:
            register(session, deployer, model=model, versions=("1.0.0",))
            dep = rollouts.promote(
                session,
                settings=settings,
                model=model,
                version="1.0.0",
                environment="production",
                actor=deployer,
                clock=clock,
            )
            assert dep.state == "active"
        simulated.edit_by_hand(session, **STAGING, version="1.0.0-hotfix", clock=clock)
        fake.hang_up()
        asked = len(fake.requests)
        findings = rollouts.reconcile(session, settings=settings, clock=clock)
        assert len(fake.requests) - asked == 1  # one attempt (read retries are 0), then no more
        by_model = {(f.model, f.environment): f for f in findings}
        first, *rest = (by_model[(m, "production")] for m in models)
        assert first.kind == "unreachable" and first.message.startswith(
            "cluster gpu-a100 unreachable during reading Deployment ml-prod/churn"
        )
        for finding in rest:
            assert finding.kind == "unreachable"
            assert finding.message == (
                "not read, cluster gpu-a100 did not answer earlier in this run: " + first.message
            )
        # The other cluster is still reconciled.
        assert by_model[("fraud", "staging")].kind == "version"
        # Nothing is remembered across runs: the next run asks again and sees the cluster.
        fake.hang_up(False)
        later = rollouts.reconcile(session, settings=settings, clock=clock)
        assert {(f.model, f.kind) for f in later} == {("fraud", "version")}
