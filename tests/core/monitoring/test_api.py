"""REST: ingestion (JSON and files), reference upload, checks, reports; over real HTTP too."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from modeldeck.core.alerts.models import Alert, AlertStatus
from modeldeck.core.api.app import create_app
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Role
from tests.core.monitoring import synth
from tests.core.monitoring.conftest import World
from tests.utils.servers import serve_asgi

TARGET = {"model": "fraud", "version": "1.0.0", "environment": "production"}
PARQUET = "application/vnd.apache.parquet"


def parquet(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue()


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict("records"):
        out.append(
            {
                "prediction_id": row["prediction_id"],
                "timestamp": row["timestamp"].isoformat(),
                "features": {f: row[f] for f in synth.FEATURES},
                "prediction": row["prediction"],
                "probabilities": {"0": row["proba_0"], "1": row["proba_1"]},
            }
        )
    return out


def stored(world: World) -> list[Path]:
    return sorted(
        p for p in Path(world.settings.data_dir).rglob("*.parquet") if "reference" not in p.parts
    )


@pytest.fixture
def tokens(world: World) -> dict[Role, str]:
    return {
        role: auth.create_token(world.session, name=role.value, role=role, actor=world.admin).token
        for role in (Role.viewer, Role.deployer)
    }


@pytest.fixture
def client(world: World, engine: Engine, tokens: dict[Role, str]) -> Iterator[TestClient]:
    app = create_app(world.settings, engine=engine, clock=world.clock)
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {tokens[Role.deployer]}"
        yield test_client


def test_parquet_upload_over_real_http_then_checks_and_report(
    world: World, engine: Engine, tokens: dict[Role, str]
) -> None:
    app = create_app(world.settings, engine=engine, clock=world.clock)
    batch = synth.predictions(2000, 31, world.window_start(), shift={"age": 1.0})
    headers = {"Authorization": f"Bearer {tokens[Role.deployer]}"}
    with serve_asgi(app) as base, httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        answer = http.post(
            "/api/v1/predictions",
            params=TARGET,
            content=parquet(batch),
            headers={"Content-Type": PARQUET},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["rows"] == 2000 and answer.json()["environment"] == "production"
        ran = http.post("/api/v1/checks/run", json={"model": "fraud", "environment": "prod"})
        assert ran.status_code == 201, ran.text
        by_kind = {r["kind"]: r for r in ran.json()}
        assert by_kind["drift"]["details"]["columns"]["age"]["drifted"] is True
        assert by_kind["drift"]["model"] == "fraud" and by_kind["drift"]["version"] == "1.0.0"
        listed = http.get("/api/v1/checks", params={"model": "fraud", "kind": "drift"}).json()
        assert listed["count"] == 1
        one = http.get(f"/api/v1/checks/{by_kind['quality']['id']}").json()
        assert one["kind"] == "quality" and one["rows"] == 2000
        report = http.get(f"/api/v1/reports/{by_kind['drift']['id']}")
        assert report.status_code == 200 and "text/html" in report.headers["content-type"]
        assert "Drift" in report.text and "score_b" in report.text and len(report.text) > 100_000
        again = http.get(f"/api/v1/reports/{by_kind['drift']['id']}")  # served from the cache
        assert again.text == report.text
        assert (
            Path(world.settings.data_dir) / "reports" / f"check-{by_kind['drift']['id']}.html"
        ).exists()


def test_a_manual_check_is_alerted_on_like_a_scheduled_one(
    client: TestClient, world: World
) -> None:
    shifted = {"age": 1.5, "score_a": 1.0}
    batch = synth.predictions(2000, 34, world.window_start(), shift=shifted, swap={"country"})
    world.ingest(batch)
    ran = client.post(
        "/api/v1/checks/run", json={"model": "fraud", "environment": "prod", "kinds": ["drift"]}
    )
    assert ran.status_code == 201, ran.text
    [drift] = ran.json()
    assert drift["status"] == "fail"
    [alert] = world.session.exec(select(Alert)).all()
    assert alert.rule == "drift" and alert.status == AlertStatus.firing
    assert alert.details["check_result_id"] == drift["id"]


def test_oversized_upload_is_413_over_real_http(
    world: World, engine: Engine, tokens: dict[Role, str]
) -> None:
    world.settings.api.max_body_bytes = 50_000
    app = create_app(world.settings, engine=engine, clock=world.clock)
    body = parquet(synth.predictions(5000, 32, world.window_start()))
    assert len(body) > 50_000
    with serve_asgi(app) as base:
        answer = httpx.post(
            f"{base}/api/v1/predictions",
            params=TARGET,
            content=body,
            headers={"Content-Type": PARQUET, "Authorization": f"Bearer {tokens[Role.deployer]}"},
            timeout=30,
        )
    assert answer.status_code == 413
    assert "larger than 50000 bytes" in answer.json()["detail"]
    assert stored(world) == []


def test_json_batches_for_predictions_and_labels(client: TestClient, world: World) -> None:
    batch = synth.predictions(50, 33, world.window_start())
    answer = client.post("/api/v1/predictions", json={**TARGET, "predictions": records(batch)})
    assert answer.status_code == 201, answer.text
    assert answer.json()["rows"] == 50
    labels = [
        {"prediction_id": i, "label": int(v)}
        for i, v in zip(batch["prediction_id"], synth.labels_for(batch, 1)["label"], strict=True)
    ]
    answer = client.post("/api/v1/labels", json={"model": "fraud", "labels": labels})
    assert answer.status_code == 201, answer.text
    assert answer.json()["kind"] == "labels"


def test_csv_and_multipart_uploads(client: TestClient, world: World) -> None:
    batch = synth.predictions(40, 34, world.window_start())
    csv = batch.to_csv(index=False).encode()
    answer = client.post(
        "/api/v1/predictions", params=TARGET, content=csv, headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 201, answer.text
    other = synth.predictions(40, 35, world.window_start(), prefix="m")
    answer = client.post(
        "/api/v1/predictions",
        params=TARGET,
        files={"file": ("batch.parquet", parquet(other), PARQUET)},
    )
    assert answer.status_code == 201, answer.text


def test_reference_upload_and_read(client: TestClient, world: World) -> None:
    ref = synth.reference(600, seed=9)
    answer = client.post(
        "/api/v1/models/fraud/versions/1.0.0/reference",
        params={"categorical": ["score_b"]},
        content=parquet(ref),
        headers={"Content-Type": PARQUET},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["rows"] == 600 and body["columns"]["score_b"]["kind"] == "cat"
    assert body["columns"]["age"]["kind"] == "num"
    assert body["task"]["positive"] == "1" and body["metrics"]["realised"]["accuracy"] > 0.6
    read = client.get("/api/v1/models/fraud/versions/1.0.0/reference").json()
    assert read["hash"] == body["hash"]


@pytest.mark.parametrize(
    ("kwargs", "status", "text"),
    [
        ({"json": {**TARGET, "predictions": []}}, 422, "at least 1 item"),
        ({"json": {**TARGET, "model": "nope", "predictions": "RECORDS"}}, 404, "no model named"),
        (
            {"json": {**TARGET, "environment": "moon", "predictions": "RECORDS"}},
            404,
            "no environment",
        ),
        ({"json": {**TARGET, "predictions": [{"prediction_id": "x"}]}}, 422, "Field required"),
        (
            {
                "content": b"PAR1 this is not parquet",
                "params": TARGET,
                "headers": {"Content-Type": PARQUET},
            },
            422,
            "not a readable Parquet file",
        ),
        (
            {"content": b"", "params": TARGET, "headers": {"Content-Type": PARQUET}},
            422,
            "the upload is empty",
        ),
        (
            {"content": b"PAR1", "headers": {"Content-Type": PARQUET}},
            422,
            "query parameter 'model' is required",
        ),
        (
            {"content": b"<xml/>", "params": TARGET, "headers": {"Content-Type": "text/xml"}},
            422,
            "unrecognised upload format",
        ),
    ],
)
def test_bad_requests_answer_clearly_and_store_nothing(
    client: TestClient, world: World, kwargs: dict[str, Any], status: int, text: str
) -> None:
    if kwargs.get("json", {}).get("predictions") == "RECORDS":
        kwargs["json"]["predictions"] = records(synth.predictions(5, 36, world.window_start()))
    answer = client.post("/api/v1/predictions", **kwargs)
    assert answer.status_code == status, answer.text
    assert text in json.dumps(answer.json())
    assert stored(world) == []


def test_json_nan_and_infinity(client: TestClient, world: World) -> None:
    """JSON has no NaN, but Python's encoder writes it: NaN in a feature is a missing value,
    Infinity is refused, a NaN prediction is refused."""
    rows = records(synth.predictions(5, 37, world.window_start()))
    rows[0]["features"]["age"] = float("inf")
    answer = client.post(
        "/api/v1/predictions",
        content=json.dumps({**TARGET, "predictions": rows}),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422 and "infinite value (row 0" in answer.json()["detail"]
    rows[0]["features"]["age"] = float("nan")
    rows[1]["prediction"] = float("nan")
    answer = client.post(
        "/api/v1/predictions",
        content=json.dumps({**TARGET, "predictions": rows}),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422 and "expected class label" in answer.json()["detail"]
    rows[1]["prediction"] = 1
    answer = client.post(
        "/api/v1/predictions",
        content=json.dumps({**TARGET, "predictions": rows}),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 201, answer.text
    (path,) = stored(world)
    assert pq.read_table(path).column("age").null_count == 1


def test_duplicates_unknown_labels_and_mixed_records(client: TestClient, world: World) -> None:
    rows = records(synth.predictions(5, 38, world.window_start()))
    assert (
        client.post("/api/v1/predictions", json={**TARGET, "predictions": rows}).status_code == 201
    )
    again = client.post("/api/v1/predictions", json={**TARGET, "predictions": rows})
    assert again.status_code == 409 and "already ingested" in again.json()["detail"]
    unknown = client.post(
        "/api/v1/labels",
        json={"model": "fraud", "labels": [{"prediction_id": "ghost", "label": 1}]},
    )
    assert unknown.status_code == 422 and "never ingested" in unknown.json()["detail"]
    mixed = records(synth.predictions(3, 39, world.window_start(), prefix="z"))
    mixed[2]["features"]["country"] = 7
    answer = client.post("/api/v1/predictions", json={**TARGET, "predictions": mixed})
    assert answer.status_code == 422 and "mixed value types: row 2" in answer.json()["detail"]
    del mixed[1]["features"]["age"]
    answer = client.post("/api/v1/predictions", json={**TARGET, "predictions": mixed})
    assert (
        answer.status_code == 422
        and "predictions[1].features: missing ['age']" in answer.json()["detail"]
    )
    assert len(stored(world)) == 1


def test_roles_and_tokens(client: TestClient, world: World, tokens: dict[Role, str]) -> None:
    rows = records(synth.predictions(3, 40, world.window_start()))
    viewer = {"Authorization": f"Bearer {tokens[Role.viewer]}"}
    answer = client.post(
        "/api/v1/predictions", json={**TARGET, "predictions": rows}, headers=viewer
    )
    assert answer.status_code == 403
    assert client.get("/api/v1/checks", headers=viewer).status_code == 200
    anonymous = client.post(
        "/api/v1/predictions", json={**TARGET, "predictions": rows}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
    assert stored(world) == []


def test_check_filters_and_missing_things(client: TestClient, world: World) -> None:
    world.ingest(synth.predictions(300, 41, world.window_start()))
    client.post(
        "/api/v1/checks/run",
        json={"model": "fraud", "environment": "production", "kinds": ["drift"]},
    )
    end = world.clock()
    assert (
        client.get(
            "/api/v1/checks", params={"since": (end - timedelta(minutes=1)).isoformat()}
        ).json()["count"]
        == 1
    )
    assert (
        client.get(
            "/api/v1/checks", params={"until": (end - timedelta(minutes=1)).isoformat()}
        ).json()["count"]
        == 0
    )
    assert client.get("/api/v1/checks", params={"kind": "decay"}).json()["count"] == 0
    assert client.get("/api/v1/checks/999").status_code == 404
    assert client.get("/api/v1/reports/999").status_code == 404
    assert client.get("/api/v1/checks", params={"environment": "moon"}).status_code == 404
    staging = client.post("/api/v1/checks/run", json={"model": "fraud", "environment": "staging"})
    assert staging.status_code == 404 and "no active deployment" in staging.json()["detail"]
    spec = client.get("/api/v1/openapi.json").json()
    body = spec["paths"]["/api/v1/predictions"]["post"]["requestBody"]["content"]
    assert "predictions" in body["application/json"]["schema"]["properties"]
    assert PARQUET in body
