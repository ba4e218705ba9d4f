"""The API over real HTTP (uvicorn on a free loopback port), through modeldeck.core.client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import AlertStatus, Severity
from modeldeck.core.api.app import create_app
from modeldeck.core.audit.models import AuditEventsPublic
from modeldeck.core.auth.models import Role
from modeldeck.core.client import ModeldeckClient
from modeldeck.core.clock import FixedClock
from modeldeck.core.db import make_engine
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthorized,
)
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import (
    ModelPublic,
    ModelsPublic,
    ModelVersionCreate,
    ModelVersionPublic,
)
from modeldeck.core.rollouts.models import Deployment, DeploymentState, Via
from tests.conftest import make_settings
from tests.integration.api_world import SMALL_BODY_LIMIT, ApiWorld, build
from tests.utils.rows import snapshot
from tests.utils.servers import free_port, serve_asgi, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(any_engine: Engine, tmp_path: Path, clock: FixedClock) -> ApiWorld:
    return build(any_engine, tmp_path, clock)


@pytest.fixture
def base_url(world: ApiWorld) -> Iterator[str]:
    with serve_asgi(world.app) as url:
        yield url


def client_as(world: ApiWorld, base_url: str, role: Role) -> ModeldeckClient:
    return ModeldeckClient(base_url, world.tokens[role])


def test_end_to_end_through_the_typed_client(world: ApiWorld, base_url: str) -> None:
    with client_as(world, base_url, Role.deployer) as md:
        assert md.healthz()["status"] == "ok" and md.readyz() == {"status": "ready"}
        assert md.whoami().role == Role.deployer
        model = md.create_model("fraud-detector", team="risk")
        assert isinstance(model, ModelPublic) and model.created_at == world.clock()
        version = md.register_version(
            "fraud-detector",
            "1.4.0",
            image="ghcr.io/acme/fraud:1.4.0",
            artifact_uri="s3://models/fraud/1.4.0",
            metrics={"auc": 0.93},
        )
        assert isinstance(version, ModelVersionPublic) and version.metrics == {"auc": 0.93}
        md.register_version(
            "fraud-detector", ModelVersionCreate(version="1.5.0+build.7", image="img:1.5")
        )
        assert md.get_version("fraud-detector", "1.5.0+build.7").version == "1.5.0+build.7"
        models = md.list_models(team="risk")
        assert isinstance(models, ModelsPublic) and [m.name for m in models.data] == [
            "fraud-detector"
        ]
        assert [v.version for v in md.list_versions("fraud-detector").data] == [
            "1.5.0+build.7",
            "1.4.0",
        ]
        assert md.get_model("fraud-detector") == model
        assert {e.name for e in md.list_environments().data} == {"staging", "production"}
        assert md.get_environment("production").approvals_required == 1

        # history: a deployment as the rollouts service writes it
        with Session(world.engine) as session:
            env = environments.get(session, "production")
            mdl = registry.get_model(session, "fraud-detector")
            row = registry.get_version(session, mdl, "1.4.0")
            assert env.id and mdl.id and row.id
            session.add(
                Deployment(
                    model_id=mdl.id,
                    environment_id=env.id,
                    version_id=row.id,
                    state=DeploymentState.active,
                    requested_by="ana",
                    requested_via=Via.slack,
                    started_at=world.clock(),
                    activated_at=world.clock(),
                )
            )
            session.commit()
        (dep,) = md.history("fraud-detector").data
        assert dep.version == "1.4.0" and dep.requested_via == Via.slack
        assert md.get_deployment(dep.id) == dep
        assert md.deployments(states=[DeploymentState.failed]).count == 0
        grid = {(r.model, r.environment): r.version for r in md.status("fraud-detector")}
        assert grid == {
            ("fraud-detector", "production"): "1.4.0",
            ("fraud-detector", "staging"): None,
        }
        later = world.clock() + timedelta(days=1)
        assert [d.version for d in md.running_at("production", later)] == ["1.4.0"]
        assert md.running_at("production", world.clock() - timedelta(seconds=1)) == []
        trail = md.audit(target="model:fraud-detector")
        assert isinstance(trail, AuditEventsPublic)
        assert [e.action for e in trail.data] == [
            "version.register",
            "version.register",
            "model.create",
        ]
        assert all(e.actor == "token:deployer-token" and e.via == "api" for e in trail.data)


def test_rollouts_and_alerts_through_the_typed_client(world: ApiWorld, base_url: str) -> None:
    """Promote, the two-person rule, approve, reject, roll back, snooze and resolve: the
    changes a CI pipeline or another service makes over HTTP."""
    deployer = client_as(world, base_url, Role.deployer)
    approver = client_as(world, base_url, Role.approver)
    viewer = client_as(world, base_url, Role.viewer)
    deployer.create_model("fraud-detector", team="risk")
    for v in ("1.0.0", "1.1.0"):
        deployer.register_version("fraud-detector", v, image=f"ghcr.io/acme/fraud:{v}")
    with pytest.raises(Forbidden):
        viewer.promote("fraud-detector", "1.0.0", "staging")
    first = deployer.promote("fraud-detector", "1.0.0", "stg", idempotency_key="ci-1")
    assert first.state == DeploymentState.active and first.environment == "staging"
    assert deployer.promote("fraud-detector", "1.0.0", "stg", idempotency_key="ci-1") == first
    waiting = approver.promote("fraud-detector", "1.0.0", "prod", reason="ship it")
    assert waiting.state == DeploymentState.awaiting_approval
    with pytest.raises(Forbidden, match="two-person rule"):
        approver.approve(waiting.id)  # the requester never approves their own request
    with pytest.raises(Forbidden):
        deployer.approve(waiting.id)  # a deployer is no approver
    admin = client_as(world, base_url, Role.admin)
    assert admin.approve(waiting.id, comment="lgtm").state == DeploymentState.active
    with pytest.raises(Conflict):
        admin.reject(waiting.id)  # already decided
    assert deployer.promote("fraud-detector", "1.1.0", "staging").state == DeploymentState.active
    back = deployer.rollback("fraud-detector", "staging", reason="latency")
    assert (back.version, back.kind) == ("1.0.0", "rollback")
    with pytest.raises(Conflict):
        deployer.rollback("fraud-detector", "staging", expected_current_id=first.id)
    assert deployer.get_deployment(back.id) == back
    assert deployer.advance(back.id).state == DeploymentState.active

    with Session(world.engine) as session:
        alert = alerts.fire(
            session,
            settings=world.settings,
            rule="drift",
            severity=Severity.warning,
            summary="input drift on fraud-detector 1.0.0",
            details={},
            clock=world.clock,
        )
        assert alert.id is not None
        alert_id = alert.id
    assert [a.id for a in viewer.alerts(status=AlertStatus.firing).data] == [alert_id]
    with pytest.raises(Forbidden):
        viewer.snooze(alert_id, "1h")
    with pytest.raises(InvalidInput):
        deployer.snooze(alert_id, "forever")
    assert deployer.snooze(alert_id, "2h").status == AlertStatus.snoozed
    assert deployer.resolve(alert_id).status == AlertStatus.resolved
    assert viewer.get_alert(alert_id).status == AlertStatus.resolved


def test_error_answers_become_core_exceptions(world: ApiWorld, base_url: str) -> None:
    deployer = client_as(world, base_url, Role.deployer)
    deployer.create_model("fraud")
    deployer.register_version("fraud", "1.0", image="img:1.0")
    before = snapshot(world.engine)
    with pytest.raises(NotFound, match="no model named 'frau'") as not_found:
        deployer.get_model("frau")
    assert not_found.value.hint == "did you mean fraud?"
    with pytest.raises(NotFound, match="has no version '9'"):
        deployer.get_version("fraud", "9")
    with pytest.raises(Conflict, match="already has a version '1.0'") as conflict:
        deployer.register_version("fraud", "1.0", image="img:1.0")
    assert conflict.value.status_code == 409 and "immutable" in str(conflict.value.hint)
    with pytest.raises(Forbidden, match="POST /api/v1/models needs the deployer role"):
        client_as(world, base_url, Role.viewer).create_model("other")
    with pytest.raises(Forbidden, match="POST /api/v1/tokens needs the admin role"):
        deployer.create_token("sneaky", role=Role.admin)
    with pytest.raises(Unauthorized, match="invalid API token"):
        ModeldeckClient(base_url, "mdk_wrong").list_models()
    with pytest.raises(Unauthorized, match="missing bearer token"):
        ModeldeckClient(base_url).whoami()
    with pytest.raises(InvalidInput, match="name: must be 1-64 lower-case ASCII"):
        deployer.request("POST", "/api/v1/models", json={"name": "fr\u0430ud"})
    with pytest.raises(InvalidInput, match="metrics: metric 'auc' must be a finite number"):
        deployer.request(
            "POST",
            "/api/v1/models/fraud/versions",
            content=b'{"version": "2", "metrics": {"auc": NaN}}',
            headers={"Content-Type": "application/json"},
        )
    # names that are not URL-safe stay one path segment and are simply unknown
    for odd in ("a/b", "x?y=1", "../models", "name with spaces", "%2F"):
        with pytest.raises(NotFound):
            deployer.get_model(odd)
    assert snapshot(world.engine) == before
    deployer.close()


def test_revoked_and_expired_tokens_over_http(world: ApiWorld, base_url: str) -> None:
    admin = client_as(world, base_url, Role.admin)
    created = admin.create_token("temp", role=Role.viewer, expires_in_days=1)
    temp = ModeldeckClient(base_url, created.token)
    assert temp.whoami().name == "token:temp"
    world.clock.advance(days=1)
    with pytest.raises(Unauthorized, match="expired"):
        temp.whoami()
    admin.revoke_token(world.token_ids[Role.viewer])
    with pytest.raises(Unauthorized, match="revoked"):
        client_as(world, base_url, Role.viewer).list_models()
    assert created.token not in json.dumps([t.model_dump(mode="json") for t in admin.list_tokens()])


def test_chunked_oversized_upload_is_413(world: ApiWorld, base_url: str) -> None:
    """Without Content-Length the limit is enforced while the body streams in."""

    def chunks() -> Iterator[bytes]:
        yield b'{"version": "2.0", "params": {"blob": "'
        for _ in range(SMALL_BODY_LIMIT // 1024 + 8):
            yield b"x" * 1024
        yield b'"}}'

    headers = {**world.auth(Role.deployer), "Content-Type": "application/json"}
    with httpx.Client(base_url=base_url) as http:
        http.post("/api/v1/models", json={"name": "fraud"}, headers=headers)
        before = snapshot(world.engine)
        response = http.post("/api/v1/models/fraud/versions", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == "payload too large"
    assert snapshot(world.engine) == before


def test_database_down_is_backend_unavailable(tmp_path: Path) -> None:
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    with serve_asgi(create_app(make_settings(tmp_path), engine=engine)) as url:
        md = ModeldeckClient(url, "mdk_whatever")
        assert md.healthz()["status"] == "ok"
        with pytest.raises(BackendUnavailable, match="database unreachable"):
            md.readyz()
        with pytest.raises(BackendUnavailable, match="the database is unavailable"):
            md.list_models()
    engine.dispose()


def test_server_not_running_is_backend_unavailable() -> None:
    md = ModeldeckClient(f"http://127.0.0.1:{free_port()}", "mdk_x", timeout=2)
    with pytest.raises(BackendUnavailable, match="cannot reach the modeldeck API") as info:
        md.list_models()
    assert info.value.hint is not None and "modeldeck api" in info.value.hint


@pytest.mark.slow
def test_modeldeck_api_process_with_a_cli_token(tmp_path: Path) -> None:
    """The real thing: `modeldeck token create` then `modeldeck api` as processes, the client
    talking to it over loopback."""
    config = tmp_path / "modeldeck.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite:///{tmp_path}/md.db",
                "clusters": [{"name": "sim"}],
                "environments": [{"name": "staging", "cluster": "sim"}],
            }
        )
    )
    exe = Path(sys.executable).with_name("modeldeck")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDECK_")}
    env["MODELDECK_CONFIG"] = str(config)
    made = subprocess.run(
        [str(exe), "--json", "token", "create", "e2e", "--role", "deployer"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=True,
    )
    token = json.loads(made.stdout)["token"]
    port = free_port()
    server = subprocess.Popen(
        [str(exe), "api", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        md = ModeldeckClient(f"http://127.0.0.1:{port}", token, timeout=5)
        wait_until(lambda: md.healthz(), timeout=60, what="modeldeck api to start")
        assert md.whoami().role == Role.deployer
        md.create_model("served")
        assert [e.name for e in md.list_environments().data] == ["staging"]
        assert md.audit(action="model.create").data[0].actor == "token:e2e"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode in (0, -15), err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "http.request"]
    assert requests and all(r["request_id"] for r in requests)  # JSON logs with request ids
    assert token not in err


def test_client_running_at_takes_any_timezone(world: ApiWorld, base_url: str) -> None:
    md = client_as(world, base_url, Role.viewer)
    naive_utc = datetime(2026, 11, 1, 12, 0)
    assert md.running_at("production", naive_utc) == []
    assert md.running_at("production", datetime.now(UTC)) == []
