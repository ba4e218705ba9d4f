"""The REST interface, over real HTTP (uvicorn on 127.0.0.1) with bearer tokens."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.api.app import create_app
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from tests.core.rollouts.world import register, snapshot
from tests.utils.servers import serve_asgi


@pytest.fixture
def api(
    engine: Engine, settings: Settings, session: Session, admin: Actor, clock: FixedClock
) -> Iterator[tuple[httpx.Client, dict[str, dict[str, str]]]]:
    register(session, admin)
    tokens = {}
    for name, role in (
        ("ci", Role.deployer),
        ("bob", Role.approver),
        ("eve", Role.approver),
        ("dave", Role.viewer),
    ):
        created = auth.create_token(session, name=name, role=role, actor=admin)
        tokens[name] = {"Authorization": f"Bearer {created.token}"}
    with (
        serve_asgi(create_app(settings, engine=engine, clock=clock)) as url,
        httpx.Client(base_url=f"{url}/api/v1", timeout=10) as client,
    ):
        yield client, tokens


def test_promote_approve_rollback_over_http(
    api: tuple[httpx.Client, dict[str, dict[str, str]]],
) -> None:
    client, tokens = api
    staged = client.post(
        "/deployments",
        headers=tokens["ci"],
        json={"model": "fraud", "version": "1.0.0", "environment": "stg", "reason": "nightly"},
    )
    assert staged.status_code == 201, staged.text
    assert staged.json()["state"] == "active" and staged.json()["environment"] == "staging"
    prod = client.post(
        "/deployments",
        headers=tokens["ci"],
        json={"model": "fraud", "version": "1.0.0", "environment": "prod"},
    )
    assert prod.status_code == 202
    body = prod.json()
    assert (body["state"], body["approvals_required"], body["requested_by"]) == (
        "awaiting_approval",
        1,
        "token:ci",
    )
    approved = client.post(
        "/approvals", headers=tokens["bob"], json={"deployment_id": body["id"], "comment": "ok"}
    )
    assert approved.status_code == 200 and approved.json()["state"] == "active"
    assert approved.json()["approvals"][0]["approver"] == "token:bob"
    history = client.get(
        "/deployments",
        headers=tokens["dave"],
        params={"model": "fraud", "environment": "production"},
    ).json()
    assert [d["id"] for d in history["data"]] == [body["id"]]


def test_rollback_over_http(api: tuple[httpx.Client, dict[str, dict[str, str]]]) -> None:
    client, tokens = api
    for version in ("1.0.0", "1.1.0"):
        assert (
            client.post(
                "/deployments",
                headers=tokens["ci"],
                json={"model": "fraud", "version": version, "environment": "staging"},
            ).status_code
            == 201
        )
    back = client.post(
        "/rollbacks",
        headers=tokens["ci"],
        json={"model": "fraud", "environment": "staging", "reason": "bad scores"},
    )
    assert back.status_code == 201
    assert (back.json()["kind"], back.json()["version"]) == ("rollback", "1.0.0")
    none_left = client.post(
        "/rollbacks",
        headers=tokens["ci"],
        json={"model": "fraud", "environment": "staging", "to_version": "1.2.0"},
    )
    assert none_left.status_code == 422
    assert none_left.json()["detail"].startswith("fraud 1.2.0 never ran in staging")


def test_a_rollback_expecting_another_active_deployment_is_a_409_that_changes_nothing(
    api: tuple[httpx.Client, dict[str, dict[str, str]]], session: Session
) -> None:
    client, tokens = api
    ids = [
        client.post(
            "/deployments",
            headers=tokens["ci"],
            json={"model": "fraud", "version": version, "environment": "staging"},
        ).json()["id"]
        for version in ("1.0.0", "1.1.0", "1.2.0")
    ]
    before = snapshot(session)
    stale = client.post(
        "/rollbacks",
        headers=tokens["ci"],
        json={"model": "fraud", "environment": "staging", "expected_current_id": ids[1]},
    )
    assert stale.status_code == 409
    assert "changed since you asked" in stale.json()["detail"]
    assert snapshot(session) == before
    ok = client.post(
        "/rollbacks",
        headers=tokens["ci"],
        json={"model": "fraud", "environment": "staging", "expected_current_id": ids[2]},
    )
    assert ok.status_code == 201 and ok.json()["version"] == "1.1.0"


def test_idempotency_key_header_returns_the_first_deployment(
    api: tuple[httpx.Client, dict[str, dict[str, str]]], session: Session
) -> None:
    client, tokens = api
    headers = {**tokens["ci"], "Idempotency-Key": "pipeline-991"}
    body = {"model": "fraud", "version": "1.0.0", "environment": "staging"}
    first = client.post("/deployments", headers=headers, json=body)
    before = snapshot(session)
    again = client.post("/deployments", headers=headers, json=body)
    assert again.json()["id"] == first.json()["id"]
    assert snapshot(session) == before
    clash = client.post("/deployments", headers=headers, json={**body, "idempotency_key": "other"})
    assert clash.status_code == 422 and "differ" in clash.json()["detail"]


def test_refusals_over_http_leave_the_database_unchanged(
    api: tuple[httpx.Client, dict[str, dict[str, str]]], session: Session
) -> None:
    client, tokens = api
    staged = client.post(
        "/deployments",
        headers=tokens["ci"],
        json={"model": "fraud", "version": "1.0.0", "environment": "staging"},
    )
    prod = client.post(
        "/deployments",
        headers=tokens["ci"],
        json={"model": "fraud", "version": "1.0.0", "environment": "production"},
    ).json()
    assert staged.status_code == 201
    before = snapshot(session)
    cases = [
        (
            None,
            "/deployments",
            {"model": "fraud", "version": "1.1.0", "environment": "staging"},
            401,
            "missing bearer token",
        ),
        (
            "dave",
            "/deployments",
            {"model": "fraud", "version": "1.1.0", "environment": "staging"},
            403,
            "promote models needs the deployer role",
        ),
        (
            "ci",
            "/deployments",
            {"model": "fraud", "version": "7.7.7", "environment": "staging"},
            404,
            "model 'fraud' has no version '7.7.7'",
        ),
        (
            "ci",
            "/deployments",
            {"model": "Fraud!", "version": "1.0.0", "environment": "staging"},
            422,
            "model",
        ),
        (
            "ci",
            "/deployments",
            {"model": "fraud", "version": "1.1.0", "environment": "production"},
            409,
            "rollout in flight in production",
        ),
        (
            "ci",
            "/approvals",
            {"deployment_id": prod["id"]},
            403,
            "approve rollouts needs the approver role",
        ),
        (
            "dave",
            "/approvals",
            {"deployment_id": prod["id"]},
            403,
            "approve rollouts needs the approver role",
        ),
        ("bob", "/approvals", {"deployment_id": 0}, 422, "deployment_id"),
        ("bob", "/approvals", {"deployment_id": 999}, 404, "no deployment with id 999"),
        (
            "bob",
            "/approvals",
            {"deployment_id": staged.json()["id"]},
            409,
            "is active; only a rollout awaiting approval",
        ),
    ]
    for who, path, body, code, detail in cases:
        assert detail is not None
        response = client.post(path, headers=tokens[who] if who else {}, json=body)
        assert response.status_code == code, (who, path, body, response.text)
        if code == 422:  # field-level message
            assert detail in [f["field"] for f in response.json()["fields"]], response.json()
        else:
            assert detail in response.json()["detail"], response.json()
    assert snapshot(session) == before


def test_self_approval_over_http_is_forbidden(
    api: tuple[httpx.Client, dict[str, dict[str, str]]], session: Session
) -> None:
    client, tokens = api
    client.post(
        "/deployments",
        headers=tokens["bob"],
        json={"model": "fraud", "version": "1.0.0", "environment": "staging"},
    )
    prod = client.post(
        "/deployments",
        headers=tokens["bob"],
        json={"model": "fraud", "version": "1.0.0", "environment": "production"},
    ).json()
    before = snapshot(session)
    mine = client.post("/approvals", headers=tokens["bob"], json={"deployment_id": prod["id"]})
    assert mine.status_code == 403 and "two-person rule" in mine.json()["detail"]
    assert snapshot(session) == before
    rejected = client.post(
        "/approvals",
        headers=tokens["eve"],
        json={"deployment_id": prod["id"], "decision": "reject", "comment": "not today"},
    )
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    late = client.post("/approvals", headers=tokens["eve"], json={"deployment_id": prod["id"]})
    assert late.status_code == 409


def test_advance_and_reconcile_endpoints(
    api: tuple[httpx.Client, dict[str, dict[str, str]]],
) -> None:
    client, tokens = api
    dep = client.post(
        "/deployments",
        headers=tokens["ci"],
        json={"model": "fraud", "version": "1.0.0", "environment": "staging"},
    ).json()
    moved = client.post(f"/deployments/{dep['id']}/advance", headers=tokens["ci"])
    assert moved.status_code == 200 and moved.json()["state"] == "active"
    assert (
        client.post(f"/deployments/{dep['id']}/advance", headers=tokens["dave"]).status_code == 403
    )
    assert client.post("/reconcile", headers=tokens["ci"]).status_code == 403
