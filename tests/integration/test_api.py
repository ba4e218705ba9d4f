"""The REST API on SQLite and PostgreSQL: status codes, error bodies, and that no refused
request writes anything (every table compared before and after)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.api.app import create_app
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import SYSTEM, Role
from modeldeck.core.clock import FixedClock
from modeldeck.core.db import make_engine, max_connections
from tests.conftest import make_settings
from tests.integration.api_world import SMALL_BODY_LIMIT, ApiWorld, build
from tests.utils.rows import snapshot
from tests.utils.servers import free_port, serve_asgi

V1 = "/api/v1"


@pytest.fixture
def world(any_engine: Engine, tmp_path: Path, clock: FixedClock) -> ApiWorld:
    return build(any_engine, tmp_path, clock)


@pytest.fixture
def client(world: ApiWorld) -> Iterator[TestClient]:
    with TestClient(world.app) as c:
        yield c


@pytest.fixture
def fraud(world: ApiWorld, client: TestClient) -> None:
    """A model `fraud` with version 1.0."""
    headers = world.auth(Role.deployer)
    assert client.post(f"{V1}/models", json={"name": "fraud"}, headers=headers).status_code == 201
    body = {"version": "1.0", "image": "ghcr.io/acme/fraud:1.0"}
    response = client.post(f"{V1}/models/fraud/versions", json=body, headers=headers)
    assert response.status_code == 201


def refused(
    world: ApiWorld,
    client: TestClient,
    method: str,
    path: str,
    status: int,
    role: Role | None = Role.admin,
    **kwargs: Any,
) -> dict[str, Any]:
    """Send a request that must fail with `status` and leave every table as it was."""
    headers = dict(kwargs.pop("headers", {}))
    if role is not None:
        headers.update(world.auth(role))
    before = snapshot(world.engine)
    response = client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert snapshot(world.engine) == before
    body: dict[str, Any] = response.json()
    assert body["detail"] and body["error"]
    return body


# --- service endpoints ----------------------------------------------------------------------


def test_health_readiness_metrics_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json() == {"status": "ready"}
    client.get(f"{V1}/models")  # 401, still counted
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert (
        'modeldeck_http_request_seconds_count{method="GET",route="/api/v1/models",'
        'status="401"}' in metrics.text
    )
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get(f"{V1}/openapi.json").json()
    for path in (
        "/api/v1/models",
        "/api/v1/models/{name}/versions",
        "/api/v1/environments",
        "/api/v1/deployments",
        "/api/v1/status",
        "/api/v1/audit",
        "/api/v1/whoami",
        "/api/v1/environments/{name}/running",
    ):
        assert path in spec["paths"], path


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    app = create_app(make_settings(tmp_path), engine=engine)
    with TestClient(app) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["detail"].startswith("database unreachable")
        assert client.get("/healthz").status_code == 200  # alive, just not ready
        down = client.get(f"{V1}/models", headers={"Authorization": "Bearer mdk_x"})
        assert down.status_code == 503
        assert down.json() == {
            "error": "backend unavailable",
            "detail": "the database is unavailable; retry later",
        }
    engine.dispose()


# --- the happy path -------------------------------------------------------------------------


def test_register_and_read_back_with_audit_and_request_id(
    world: ApiWorld, client: TestClient
) -> None:
    headers = {**world.auth(Role.deployer), "X-Request-ID": "req-42"}
    created = client.post(
        f"{V1}/models", json={"name": "fraud-detector", "team": "risk"}, headers=headers
    )
    assert created.status_code == 201 and created.headers["x-request-id"] == "req-42"
    assert created.json()["created_at"] == world.clock().isoformat().replace("+00:00", "Z")
    body = {
        "version": "1.4.0",
        "image": "ghcr.io/acme/fraud:1.4.0",
        "artifact_uri": "s3://models/fraud/1.4.0",
        "metrics": {"auc": 0.93},
        "params": {"depth": 8},
        "git_commit": "abc1234",
    }
    registered = client.post(f"{V1}/models/fraud-detector/versions", json=body, headers=headers)
    assert registered.status_code == 201
    assert registered.json()["created_by"] == "token:deployer-token"
    viewer = world.auth(Role.viewer)
    got = client.get(f"{V1}/models/fraud-detector/versions/1.4.0", headers=viewer).json()
    assert got["metrics"] == {"auc": 0.93} and got["model"] == "fraud-detector"
    listing = client.get(f"{V1}/models/fraud-detector/versions", headers=viewer).json()
    assert listing["count"] == 1
    assert client.get(f"{V1}/models", headers=viewer).json()["data"][0]["team"] == "risk"
    audit = client.get(
        f"{V1}/audit", params={"target": "model:fraud-detector"}, headers=viewer
    ).json()
    assert [(e["action"], e["request_id"], e["via"]) for e in audit["data"]] == [
        ("version.register", "req-42", "api"),
        ("model.create", "req-42", "api"),
    ]


def test_viewer_reads_everything(world: ApiWorld, client: TestClient, fraud: None) -> None:
    viewer = world.auth(Role.viewer)
    for path in (
        "/models",
        "/models/fraud",
        "/models/fraud/versions",
        "/environments",
        "/environments/production",
        "/deployments",
        "/status",
        "/audit",
        "/whoami",
    ):
        assert client.get(V1 + path, headers=viewer).status_code == 200, path
    running = client.get(
        f"{V1}/environments/production/running",
        params={"at": "2026-11-01T12:00:00+02:00"},
        headers=viewer,
    )
    assert running.status_code == 200 and running.json() == []
    assert client.get(f"{V1}/whoami", headers=viewer).json() == {
        "name": "token:viewer-token",
        "role": "viewer",
    }


def test_admin_manages_tokens(world: ApiWorld, client: TestClient) -> None:
    admin = world.auth(Role.admin)
    created = client.post(
        f"{V1}/tokens",
        json={"name": "ci", "role": "deployer", "expires_in_days": 30},
        headers=admin,
    )
    assert created.status_code == 201
    token = created.json()["token"]
    assert (
        client.get(f"{V1}/whoami", headers={"Authorization": f"Bearer {token}"}).json()["role"]
        == "deployer"
    )
    listed = client.get(f"{V1}/tokens", headers=admin).json()
    assert token not in json.dumps(listed) and len(listed) == 5
    token_id = created.json()["id"]
    assert client.delete(f"{V1}/tokens/{token_id}", headers=admin).status_code == 204
    again = client.get(f"{V1}/whoami", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401 and again.json()["detail"] == "this API token was revoked"


# --- 401 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "missing bearer token"),
        ({"Authorization": "Bearer"}, "missing bearer token"),
        ({"Authorization": "Bearer mdk_not-a-real-token"}, "invalid API token"),
    ],
)
def test_requests_without_a_valid_token_are_401(
    world: ApiWorld, client: TestClient, headers: dict[str, str], detail: str
) -> None:
    for method, path, body in (("GET", "/models", None), ("POST", "/models", {"name": "x"})):
        refused_body = refused(
            world, client, method, V1 + path, 401, role=None, headers=headers, json=body
        )
        assert refused_body["detail"] == detail
    response = client.get(f"{V1}/models", headers=headers)
    assert response.headers["www-authenticate"] == "Bearer"


def test_expired_and_revoked_tokens_are_401(world: ApiWorld, client: TestClient) -> None:
    admin = world.auth(Role.admin)
    short = client.post(
        f"{V1}/tokens", json={"name": "short", "expires_in_days": 1}, headers=admin
    ).json()
    world.clock.advance(days=1)
    body = refused(
        world,
        client,
        "GET",
        f"{V1}/models",
        401,
        role=None,
        headers={"Authorization": f"Bearer {short['token']}"},
    )
    assert body["detail"] == "this API token has expired"
    client.delete(f"{V1}/tokens/{world.token_ids[Role.deployer]}", headers=admin)
    body = refused(
        world, client, "POST", f"{V1}/models", 401, role=Role.deployer, json={"name": "fraud"}
    )
    assert body["detail"] == "this API token was revoked"


# --- 403 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "method", "path", "body", "needed"),
    [
        (Role.viewer, "POST", "/models", {"name": "x"}, "deployer"),
        (Role.viewer, "POST", "/models/fraud/versions", {"version": "2", "image": "i"}, "deployer"),
        (Role.deployer, "POST", "/tokens", {"name": "t", "role": "admin"}, "admin"),
        (Role.approver, "GET", "/tokens", None, "admin"),
        (Role.approver, "DELETE", "/tokens/1", None, "admin"),
    ],
)
def test_roles_that_may_not_get_403(
    world: ApiWorld,
    client: TestClient,
    fraud: None,
    role: Role,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    needed: str,
) -> None:
    answer = refused(world, client, method, V1 + path, 403, role=role, json=body)
    assert answer["error"] == "forbidden"
    assert answer["detail"] == (
        f"{method} {V1}{path} needs the {needed} role; token:{role}-token is {role}"
    )


HUGE = 2**63 + 1


# --- 404 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "detail"),
    [
        ("GET", "/models/fraud-detector", "no model named 'fraud-detector'"),
        ("GET", "/models/nope/versions", "no model named 'nope'"),
        ("GET", "/models/fraud/versions/9.9", "model 'fraud' has no version '9.9'"),
        ("POST", "/models/nope/versions", "no model named 'nope'"),
        ("GET", "/environments/qa", "no environment named 'qa'"),
        ("GET", "/environments/qa/running?at=2026-01-01T00:00:00Z", "no environment named"),
        ("GET", "/deployments/999", "no deployment with id 999"),
        # ids no row can have (INTEGER is 32-bit on PostgreSQL, 64-bit on SQLite)
        ("GET", f"/deployments/{HUGE}", f"no deployment with id {HUGE}"),
        ("GET", "/deployments/0", "no deployment with id 0"),
        ("GET", f"/deployments/{2**31}", f"no deployment with id {2**31}"),
        ("GET", f"/checks/{2**31}", f"no check result with id {2**31}"),
        ("POST", f"/deployments/{HUGE}/advance", f"no deployment with id {HUGE}"),
        ("GET", f"/checks/{HUGE}", f"no check result with id {HUGE}"),
        ("GET", f"/reports/{HUGE}", f"no check result with id {HUGE}"),
        ("GET", f"/alerts/{HUGE}", f"no alert with id {HUGE}"),
        ("POST", f"/alerts/{HUGE}/resolve", f"no alert with id {HUGE}"),
        ("DELETE", f"/tokens/{HUGE}", f"no API token with id {HUGE}"),
        ("GET", "/deployments?model=nope", "no model named 'nope'"),
        ("GET", "/status?model=nope", "no model named 'nope'"),
        ("GET", "/no-such-route", "Not Found"),
    ],
)
def test_unknown_names_are_404(
    world: ApiWorld, client: TestClient, fraud: None, method: str, path: str, detail: str
) -> None:
    json_body = {"version": "1.0", "image": "i"} if method == "POST" else None
    answer = refused(world, client, method, V1 + path, 404, json=json_body)
    assert answer["error"] == "not found" and detail in answer["detail"]


def test_not_found_carries_a_hint(world: ApiWorld, client: TestClient, fraud: None) -> None:
    answer = refused(world, client, "GET", f"{V1}/models/frau", 404)
    assert answer["hint"] == "did you mean fraud?"


# --- 409 ------------------------------------------------------------------------------------


def test_duplicates_are_409(world: ApiWorld, client: TestClient, fraud: None) -> None:
    answer = refused(world, client, "POST", f"{V1}/models", 409, json={"name": "fraud"})
    assert answer == {"error": "conflict", "detail": "model 'fraud' already exists"}
    answer = refused(
        world,
        client,
        "POST",
        f"{V1}/models/fraud/versions",
        409,
        json={"version": "1.0", "image": "other"},
    )
    assert answer["detail"] == "model 'fraud' already has a version '1.0'"
    assert "immutable" in answer["hint"]


# --- 422 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "raw", "field", "message"),
    [
        ("/models", '{"name": "fraud",', "body", "the body is not valid JSON"),
        ("/models", '["fraud"]', "body", "valid dictionary"),
        ("/models", '{"name": "fraud detector"}', "name", "whitespace"),
        ("/models", json.dumps({"name": "a" * 300}), "name", "at most 64 characters"),
        ("/models", '{"name": "fr\\u0430ud"}', "name", "U+0430 CYRILLIC SMALL LETTER A"),
        ("/models", '{"name": "Fraud"}', "name", "lower-case"),
        ("/models", '{"name": ""}', "name", "must be 1-64"),
        ("/models", "{}", "name", "Field required"),
        ("/models", '{"name": "x", "task_type": "ranking"}', "task_type", "Input should be"),
        ("/models", '{"name": "x", "description": "a\\u0000b"}', "description", "control"),
        ("/models", '{"name": "x", "descripton": "typo"}', "descripton", "unknown field"),
        (
            "/models/fraud/versions",
            '{"version": "1.1", "metrics": {"auc": NaN}}',
            "metrics",
            "metric 'auc' must be a finite number, got nan",
        ),
        (
            "/models/fraud/versions",
            '{"version": "1.1", "metrics": {"auc": Infinity}}',
            "metrics",
            "finite",
        ),
        (
            "/models/fraud/versions",
            '{"version": "1.1", "metrics": {"auc": "high"}}',
            "metrics.auc",
            "valid number",
        ),
        (
            "/models/fraud/versions",
            '{"version": "1.1", "params": {"lr": [NaN]}}',
            "params",
            "finite",
        ),
        ("/models/fraud/versions", '{"version": "1 1"}', "version", "whitespace"),
        ("/models/fraud/versions", '{"version": "1.1"}', "body", "needs something to deploy"),
        (
            "/models/fraud/versions",
            '{"version": "1.1", "image": " ", "artifact_uri": ""}',
            "body",
            "a version needs something to deploy: an image, an artifact_uri or both",
        ),
        ("/models/fraud/versions", '{"version": "1.1", "image": "a\\nb"}', "image", "one line"),
        (
            "/models/fraud/versions",
            '{"version": "1.1", "git_commit": "xyz"}',
            "git_commit",
            "pattern",
        ),
        ("/tokens", '{"name": "t", "role": "superuser"}', "role", "Input should be"),
        ("/tokens", '{"name": "t", "expires_in_days": 0}', "expires_in_days", "greater"),
    ],
)
def test_bad_bodies_are_422_with_field_messages(
    world: ApiWorld, client: TestClient, fraud: None, path: str, raw: str, field: str, message: str
) -> None:
    answer = refused(
        world,
        client,
        "POST",
        V1 + path,
        422,
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert answer["error"] == "invalid input"
    fields = {f["field"]: f["message"] for f in answer["fields"]}
    assert field in fields, answer
    assert message in fields[field], fields
    assert all(set(f) == {"field", "message"} for f in answer["fields"])  # no input echoed
    assert "a" * 100 not in json.dumps(answer)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/models?limit=0", "query.limit"),
        ("/models?limit=lots", "query.limit"),
        ("/audit?since=yesterday", "query.since"),
        ("/environments/production/running", "query.at"),
        ("/environments/production/running?at=not-a-time", "query.at"),
        ("/deployments?state=exploded", "query.state.0"),
        ("/deployments/abc", "path.deployment_id"),
    ],
)
def test_bad_query_parameters_are_422(
    world: ApiWorld, client: TestClient, path: str, field: str
) -> None:
    answer = refused(world, client, "GET", V1 + path, 422, role=Role.viewer)
    assert field in {f["field"] for f in answer["fields"]}


# --- 413 ------------------------------------------------------------------------------------


def test_oversized_body_is_413_and_never_parsed(
    world: ApiWorld, client: TestClient, fraud: None
) -> None:
    huge = json.dumps({"version": "2.0", "params": {"blob": "x" * SMALL_BODY_LIMIT}})
    answer = refused(
        world,
        client,
        "POST",
        f"{V1}/models/fraud/versions",
        413,
        content=huge,
        headers={"Content-Type": "application/json"},
    )
    assert answer == {
        "error": "payload too large",
        "detail": f"request body larger than {SMALL_BODY_LIMIT} bytes",
    }
    just_fits = json.dumps({"version": "2.0", "image": "i", "params": {"blob": "x" * 1000}})
    ok = client.post(
        f"{V1}/models/fraud/versions",
        content=just_fits,
        headers={**world.auth(Role.deployer), "Content-Type": "application/json"},
    )
    assert ok.status_code == 201


def test_concurrent_writes_that_all_miss_the_token_cache_finish(world: ApiWorld) -> None:
    """Three times as many writes as the pool has connections, all at once, each with a token
    not cached yet (start-up, or right after a revocation): authentication must not wait for
    a connection slot while its request holds one (a deadlock that never times out)."""
    n = 3 * max_connections(world.engine)
    with Session(world.engine) as session:
        tokens = [
            auth.create_token(session, name=f"ci-{i}", role=Role.deployer, actor=SYSTEM).token
            for i in range(n)
        ]

    async def burst(base: str) -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:

            async def create(i: int) -> int:
                answer = await http.post(
                    f"{V1}/models",
                    json={"name": f"model-{i}"},
                    headers={"Authorization": f"Bearer {tokens[i]}"},
                )
                return answer.status_code

            return list(await asyncio.wait_for(asyncio.gather(*map(create, range(n))), 60))

    with serve_asgi(world.app) as base:
        assert asyncio.run(burst(base)) == [201] * n
