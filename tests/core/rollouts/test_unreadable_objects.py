"""Objects the client or a backend cannot read, on the fake Kubernetes API server.

Before, the client's ValueError (or a backend's AttributeError) escaped `launch` and left the
row `pending` for ever, which blocked every later promote and the emergency rollback.
Staging serves Deployments (gpu-l4), "serving" InferenceServices (gpu-a100, KServe).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
from modeldeck.core.rollouts.models import DeploymentPublic
from tests.conftest import make_settings
from tests.core.rollouts.world import register
from tests.utils.fake_k8s import DEPLOYMENT, ISVC, FakeKubernetes, write_kubeconfig

Obj = dict[str, Any]
MARKED_FAILED = r"deployment #\d+ is marked failed"


def no_container_name(obj: Obj) -> None:
    obj["spec"]["template"]["spec"]["containers"][0].pop("name")


def set_image(image: str) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:  # kubectl set image
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = image

    return change


def string_condition(obj: Obj) -> None:
    obj["status"]["conditions"].append("Ready")  # a list item that is not an object


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        server.add_deployment("ml-staging", "fraud", image="ghcr.io/acme/fraud:0.9.0")
        server.add_inference_service("ml-serving", "fraud", storage_uri="s3://models/fraud/0.9.0")
        yield server


@pytest.fixture
def settings(tmp_path: Path, fake: FakeKubernetes) -> Settings:
    config = write_kubeconfig(tmp_path / "kubeconfig", {"gpu-l4": fake, "gpu-a100": fake})
    return make_settings(
        tmp_path,
        clusters=[
            {
                "name": name,
                "backend": backend,
                "kubeconfig": str(config),
                "context": name,
                "api_timeout_seconds": 2,
                "rollout_timeout_seconds": 900,
            }
            for name, backend in (("gpu-l4", "kubernetes"), ("gpu-a100", "kserve"))
        ],
        environments=[
            {"name": "staging", "cluster": "gpu-l4", "namespace": "ml-staging"},
            {"name": "serving", "cluster": "gpu-a100", "namespace": "ml-serving"},
        ],
    )


@pytest.fixture(autouse=True)
def _registry(session: Session, admin: Actor) -> None:
    register(session, admin)


def _promote(
    session: Session, settings: Settings, actor: Actor, clock: FixedClock, version: str, env: str
) -> DeploymentPublic:
    return rollouts.promote(
        session,
        settings=settings,
        model="fraud",
        version=version,
        environment=env,
        actor=actor,
        clock=clock,
    )


def _failed_events(session: Session) -> int:
    return len(
        session.exec(select(AuditEvent).where(AuditEvent.action == "deployment.failed")).all()
    )


def test_an_object_the_client_cannot_read_fails_the_promote_and_blocks_nothing(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    for version in ("1.0.0", "1.1.0"):
        assert _promote(session, settings, deployer, clock, version, "staging").state == "active"
        clock.advance(hours=1)
    patches = len(fake.patches())
    fake.malform(DEPLOYMENT, "ml-staging", "fraud", no_container_name)
    with pytest.raises(BackendUnavailable, match=rf"cannot read .*{MARKED_FAILED}"):
        _promote(session, settings, deployer, clock, "1.2.0", "staging")
    row = queries.history(session, model="fraud").data[0]
    assert (row.version, row.state, row.finished_at) == ("1.2.0", "failed", clock())
    assert row.message.startswith(
        "could not apply to cluster gpu-l4: cluster gpu-l4 returned an object modeldeck cannot "
        "read during reading Deployment ml-staging/fraud on cluster gpu-l4: ValidationError: "
    )
    assert "kubectl get -o yaml" in row.message  # the hint
    assert _failed_events(session) == 1 and len(fake.patches()) == patches
    # The emergency rollback is not "in flight (pending)"-blocked: it gets its own answer…
    with pytest.raises(BackendUnavailable, match=MARKED_FAILED):
        rollouts.rollback(
            session,
            settings=settings,
            model="fraud",
            environment="staging",
            actor=deployer,
            clock=clock,
        )
    # …and once the object reads again, both the rollback and the next promote go through.
    fake.malform(DEPLOYMENT, "ml-staging", "fraud", None)
    back = rollouts.rollback(
        session,
        settings=settings,
        model="fraud",
        environment="staging",
        actor=deployer,
        clock=clock,
    )
    assert (back.state, back.version) == ("active", "1.0.0")
    again = _promote(session, settings, deployer, clock, "1.2.0", "staging")
    assert (again.state, again.version) == ("active", "1.2.0")


def test_an_unexpected_exception_in_a_backend_fails_the_row_with_its_reason(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    # KServe objects are plain dicts: an odd shape breaks the backend itself, not the client.
    fake.malform(ISVC, "ml-serving", "fraud", string_condition)
    with pytest.raises(BackendUnavailable, match=rf"unexpected AttributeError.*{MARKED_FAILED}"):
        _promote(session, settings, deployer, clock, "1.0.0", "serving")
    [row] = queries.history(session, model="fraud").data
    assert row.state == "failed" and fake.patches() == []
    assert row.message.startswith(
        "could not apply to cluster gpu-a100: unexpected AttributeError: "
        "'str' object has no attribute 'get' (modeldeck's log has the traceback"
    )
    assert _failed_events(session) == 1
    fake.malform(ISVC, "ml-serving", "fraud", None)
    assert _promote(session, settings, deployer, clock, "1.0.0", "serving").state == "active"


def test_a_rollout_whose_status_cannot_be_read_times_out_instead_of_raising(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    assert _promote(session, settings, deployer, clock, "1.0.0", "serving").state == "active"
    fake.set_mode(ISVC, "ml-serving", "fraud", "hold")
    dep = _promote(session, settings, deployer, clock, "1.1.0", "serving")
    assert dep.state == "rolling_out"
    fake.malform(ISVC, "ml-serving", "fraud", string_condition)
    dep = rollouts.advance(session, settings=settings, deployment_id=dep.id, clock=clock)
    assert dep.state == "rolling_out"
    assert dep.message.startswith("cannot read the rollout status: unexpected AttributeError")
    clock.advance(seconds=901)
    dep = rollouts.advance(session, settings=settings, deployment_id=dep.id, clock=clock)
    assert dep.state == "failed"
    assert dep.message.startswith("not available within 900s: cannot read the rollout status")
    # The restore could not read the object either: said, not raised.
    assert "; could not restore the active version on the cluster: unexpected" in dep.message


def test_reconcile_reports_an_unreadable_object_and_checks_the_rest(
    session: Session, settings: Settings, fake: FakeKubernetes, deployer: Actor, clock: FixedClock
) -> None:
    for env in ("staging", "serving"):
        assert _promote(session, settings, deployer, clock, "1.0.0", env).state == "active"
    fake.malform(ISVC, "ml-serving", "fraud", string_condition)
    fake.edit(DEPLOYMENT, "ml-staging", "fraud", set_image("ghcr.io/acme/fraud:hotfix"))
    findings = {
        f.environment: f for f in rollouts.reconcile(session, settings=settings, clock=clock)
    }
    assert findings["serving"].kind == "unreachable"
    assert findings["serving"].message.startswith("unexpected AttributeError")
    assert (findings["staging"].kind, findings["staging"].observed) == (
        "artifact",
        "ghcr.io/acme/fraud:hotfix",
    )
