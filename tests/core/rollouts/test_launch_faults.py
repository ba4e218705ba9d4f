"""Rollouts when the Kubernetes API misbehaves: lost answers, hand changes, deletions, crashes.

Both environments run on the fake Kubernetes API server (two contexts, one server).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.errors import BackendUnavailable
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import DeploymentPublic
from tests.conftest import make_settings
from tests.core.rollouts.world import register
from tests.utils.fake_k8s import DEPLOYMENT, FakeKubernetes, write_kubeconfig
from tests.utils.servers import wait_until

TIMEOUT = 0.5  # per API request on staging's cluster: a late answer takes longer


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        for namespace in ("ml-staging", "ml-prod"):
            for model in ("fraud", "churn"):
                server.add_deployment(
                    namespace, model, image=f"ghcr.io/acme/{model}:0.9.0", version="0.9.0"
                )
        yield server


@pytest.fixture
def settings(tmp_path: Path, fake: FakeKubernetes) -> Settings:
    config = write_kubeconfig(tmp_path / "kubeconfig", {"gpu-l4": fake, "gpu-a100": fake})
    return make_settings(
        tmp_path,
        clusters=[
            {
                "name": name,
                "backend": "kubernetes",
                "kubeconfig": str(config),
                "context": name,
                "api_timeout_seconds": timeout,
                "rollout_timeout_seconds": 900,
            }
            for name, timeout in (("gpu-l4", TIMEOUT), ("gpu-a100", 5.0))
        ],
    )


@pytest.fixture(autouse=True)
def _registry(session: Session, admin: Actor) -> None:
    register(session, admin)
    register(session, admin, model="churn", versions=("3.0.0",))


def _promote(
    session: Session, settings: Settings, actor: Actor, clock: FixedClock, version: str = "1.0.0"
) -> DeploymentPublic:
    return rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version=version,
        environment="staging",
        actor=actor,
        clock=clock,
    )


def _image(fake: FakeKubernetes, namespace: str = "ml-staging", name: str = "fraud") -> str:
    obj = fake.get(DEPLOYMENT, namespace, name)
    image: str = obj["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_a_patch_that_lands_but_answers_too_late_is_followed_not_failed(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    fake.set_mode(DEPLOYMENT, "ml-staging", "fraud", "hold")
    fake.slow_next(1, seconds=TIMEOUT * 3, method="PATCH", after_apply=True)
    dep = _promote(session, settings, deployer, clock)
    # The client timed out, but the cluster has the change: the record says so.
    assert _image(fake) == "ghcr.io/acme/fraud:1.0.0"
    assert dep.state == "rolling_out" and dep.applied_at == clock()
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "deployment.rollout")).one()
    assert event.after is not None
    assert event.after["message"].startswith("the cluster took the change but answered: ")
    assert "ReadTimeoutError" in event.after["message"]
    fake.finish(DEPLOYMENT, "ml-staging", "fraud")
    dep = rollouts.advance(session, settings=settings, deployment_id=dep.id, clock=clock)
    assert dep.state == "active"


def test_a_500_on_patch_after_the_write_landed_is_followed(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    fake.fail_next(1, status=500, method="PATCH", after_apply=True)
    dep = _promote(session, settings, deployer, clock)
    assert dep.state == "active" and dep.version == "1.0.0"
    assert _image(fake) == "ghcr.io/acme/fraud:1.0.0"


def test_a_500_on_patch_that_changed_nothing_fails_with_the_clusters_reason(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    fake.fail_next(1, status=500, method="PATCH")
    with pytest.raises(BackendUnavailable, match=r"HTTP 500 .*deployment #\d+ is marked failed"):
        _promote(session, settings, deployer, clock)
    [row] = queries.history(session, model="fraud").data
    assert row.state == "failed" and row.applied_at is None
    assert row.message.startswith(
        "could not apply to cluster gpu-l4: cluster gpu-l4 failed patching Deployment "
        "ml-staging/fraud on cluster gpu-l4: HTTP 500 Internal error occurred"
    )
    assert _image(fake) == "ghcr.io/acme/fraud:0.9.0"
    assert [r.method for r in fake.requests].count("PATCH") == 1


def test_the_scheduler_does_not_relaunch_an_approved_request_while_its_launch_runs(
    engine: Engine,
    session: Session,
    settings: Settings,
    fake: FakeKubernetes,
    deployer: Actor,
    approver: Actor,
    clock: FixedClock,
) -> None:
    assert _promote(session, settings, deployer, clock).state == "active"
    waiting = rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version="1.0.0",
        environment="production",
        actor=deployer,
        clock=clock,
    )
    assert waiting.state == "awaiting_approval"
    clock.advance(hours=2)  # the request is old by the time someone approves it
    fake.slow_next(1, seconds=1.0, method="PATCH")  # slow, within production's 5 s timeout
    result: dict[str, Any] = {}

    def approve() -> None:
        with Session(engine, expire_on_commit=False) as own:
            try:
                result["dep"] = rollouts.approve(
                    own, settings=settings, deployment_id=waiting.id, actor=approver, clock=clock
                )
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                result["error"] = exc

    def prod_patches() -> int:
        return sum(1 for r in fake.patches() if "/namespaces/ml-prod/" in r.path)

    thread = threading.Thread(target=approve)
    thread.start()
    try:
        wait_until(lambda: prod_patches() == 1, what="the approver's PATCH at the cluster")
        clock.advance(seconds=5)
        during = rollouts.advance(session, settings=settings, deployment_id=waiting.id, clock=clock)
        assert during.state == "pending"  # being launched by the approver: left alone
    finally:
        thread.join(timeout=10)
    assert "error" not in result, result
    assert result["dep"].state == "active"
    assert prod_patches() == 1  # sent once, by the approver


def test_kubectl_set_image_during_a_rollout_fails_it_and_is_left_alone(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    first = _promote(session, settings, deployer, clock)
    fake.set_mode(DEPLOYMENT, "ml-staging", "fraud", "hold")
    dep = _promote(session, settings, deployer, clock, version="1.1.0")
    assert dep.state == "rolling_out"

    def set_image(obj: dict[str, Any]) -> None:  # keeps modeldeck's annotations
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/acme/fraud:hotfix"

    fake.edit(DEPLOYMENT, "ml-staging", "fraud", set_image)
    fake.finish(DEPLOYMENT, "ml-staging", "fraud")
    dep = rollouts.advance(session, settings=settings, deployment_id=dep.id, clock=clock)
    assert dep.state == "failed"
    assert "changed by someone else during the rollout (it now runs image " in dep.message
    assert "restored" not in dep.message
    assert _image(fake) == "ghcr.io/acme/fraud:hotfix"  # a person's change is not undone
    assert queries.get(session, first.id).state == "active"


def test_a_deployment_deleted_during_the_rollout_fails_it_at_once(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    fake.set_mode(DEPLOYMENT, "ml-staging", "fraud", "hold")
    dep = _promote(session, settings, deployer, clock)
    fake.delete(DEPLOYMENT, "ml-staging", "fraud")
    clock.advance(seconds=10)  # far from the 900 s rollout timeout
    dep = rollouts.advance(session, settings=settings, deployment_id=dep.id, clock=clock)
    assert dep.state == "failed" and dep.finished_at == clock()
    assert dep.message.startswith(
        "the serving object is gone: reading Deployment ml-staging/fraud on cluster gpu-l4: "
        "not found"
    )
    assert 'deployments.apps "fraud" not found' in dep.message


def test_one_broken_rollout_does_not_stop_the_others(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    for model in ("fraud", "churn"):
        fake.set_mode(DEPLOYMENT, "ml-staging", model, "hold")
    broken = _promote(session, settings, deployer, clock)
    healthy = rollouts.promote(
        session,
        settings=settings,
        model="churn",
        version="3.0.0",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert (broken.state, healthy.state) == ("rolling_out", "rolling_out")

    def mangle(obj: dict[str, Any]) -> None:  # a shape the client cannot read
        obj["metadata"]["annotations"] = ["not", "a", "map"]

    fake.edit(DEPLOYMENT, "ml-staging", "fraud", mangle)
    fake.finish(DEPLOYMENT, "ml-staging", "churn")
    moved = rollouts.advance_in_flight(session, settings=settings, clock=clock)
    assert [(d.id, d.state) for d in moved] == [(broken.id, "rolling_out"), (healthy.id, "active")]
    # Unreadable is "cannot tell yet", like an unreachable cluster: tried again next pass, and
    # failed by the rollout timeout instead of staying in flight for ever.
    assert moved[0].message.startswith(
        "cannot read the rollout status: cluster gpu-l4 returned an object modeldeck cannot read"
    )
    clock.advance(seconds=901)
    moved = rollouts.advance_in_flight(session, settings=settings, clock=clock)
    assert [(d.id, d.state) for d in moved] == [(broken.id, "failed")]
    assert moved[0].message.startswith("not available within 900s: cannot read")
