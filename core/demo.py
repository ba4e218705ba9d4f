"""`modeldeck demo`: a self-contained world in ./.modeldeck on SQLite and simulated clusters.

The world goes through the same service functions as production; only the data generator
and the simulated backend are demo-specific.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path
from typing import Any

import yaml

from modeldeck.core import db
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import SYSTEM, Actor, Role
from modeldeck.core.cli import output
from modeldeck.core.config import DEMO_CONFIG_FILE, Settings, load_settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import ConfigError
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate, TaskType

DEMO_DIR = Path(".modeldeck")
DEMO_ACTOR = Actor(name="demo-seeder", role=Role.admin, via="cli")

MODELS: list[dict[str, Any]] = [
    {"name": "fraud-detector", "team": "risk", "owner": "ana@acme.io",
     "task_type": TaskType.classification,
     "description": "Card-not-present fraud scoring (gradient boosting)",
     "versions": [("1.2.0", {"auc": 0.91, "accuracy": 0.94}), ("1.3.0", {"auc": 0.93, "accuracy": 0.95})]},
    {"name": "churn-predictor", "team": "growth", "owner": "li@acme.io",
     "task_type": TaskType.classification,
     "description": "30-day churn propensity for subscribers",
     "versions": [("2.0.0", {"auc": 0.84, "accuracy": 0.81}), ("2.1.0", {"auc": 0.86, "accuracy": 0.83})]},
    {"name": "eta-regressor", "team": "logistics", "owner": "sam@acme.io",
     "task_type": TaskType.regression,
     "description": "Delivery ETA in minutes",
     "versions": [("0.9.0", {"mae": 4.1, "rmse": 6.0}), ("1.0.0", {"mae": 3.7, "rmse": 5.4})]},
    {"name": "search-ranker", "team": "search", "owner": "kim@acme.io",
     "task_type": TaskType.classification,
     "description": "Learning-to-rank re-ranker (GPU)",
     "versions": [("3.1.0", {"auc": 0.88, "accuracy": 0.90})]},
]


def demo_config(data_dir: Path) -> dict[str, Any]:
    """The demo's modeldeck.yaml: two simulated GPU clusters, staging then production."""
    return {
        "database_url": f"sqlite:///{data_dir}/modeldeck.db",
        "data_dir": str(data_dir / "data"),
        "clusters": [
            {"name": "gpu-a100", "backend": "simulated", "gpu_model": "A100", "gpus": 8},
            {"name": "gpu-l4", "backend": "simulated", "gpu_model": "L4", "gpus": 16},
        ],
        "environments": [
            {"name": "staging", "cluster": "gpu-l4", "namespace": "ml-staging",
             "aliases": ["stg"], "auto_rollback": True},
            {"name": "production", "cluster": "gpu-a100", "namespace": "ml-prod",
             "aliases": ["prod"], "requires_previous": "staging", "approvals_required": 1,
             "auto_rollback": True},
        ],
        "roles": {"default": "viewer"},
    }


def free_port(preferred: int) -> int:
    """`preferred` if nothing listens there, else any free port (0 = any)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", preferred))
            return int(sock.getsockname()[1])
        except OSError:
            pass
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(base: Path = DEMO_DIR, *, reset: bool = False) -> Settings:
    """Create (or reset) the demo folder and its config; return the settings."""
    if reset and base.exists():
        shutil.rmtree(base)
    try:
        base.mkdir(parents=True, exist_ok=True)
        config_file = base / "modeldeck.yaml"
        config_file.write_text(yaml.safe_dump(demo_config(base), sort_keys=False))
    except OSError as exc:
        raise ConfigError(f"cannot write the demo folder {base}: {exc.strerror}",
                          hint="run the demo from a folder you can write to") from exc
    return load_settings(config_file)


def seed(settings: Settings) -> dict[str, Any]:
    """Seed the registry (idempotent: a second run adds nothing)."""
    engine = db.make_engine(settings.database_url)
    db.upgrade(engine)
    created = 0
    with db.session_scope(engine) as session:
        environments.sync(session, settings, actor=SYSTEM)
        for spec in MODELS:
            existing = {v.version for v in registry.list_versions(session, spec["name"]).data} \
                if _has_model(session, spec["name"]) else set()
            for version, metrics in spec["versions"]:
                if version in existing:
                    continue
                registry.register_version(
                    session, model_name=spec["name"], actor=DEMO_ACTOR,
                    data=ModelVersionCreate(
                        version=version,
                        image=f"ghcr.io/acme/{spec['name']}:{version}",
                        artifact_uri=f"s3://acme-models/{spec['name']}/{version}/model.pkl",
                        training_data_fingerprint=_fingerprint(spec["name"], version),
                        metrics=metrics,
                    ),
                    create_model_if_missing=ModelCreate(
                        name=spec["name"], description=spec["description"], owner=spec["owner"],
                        team=spec["team"], task_type=spec["task_type"]),
                )
                created += 1
        token = auth.create_token(session, name=f"demo-admin-{created}", role=Role.admin,
                                  actor=DEMO_ACTOR)
    engine.dispose()
    return {"versions_created": created, "token": token.token}


def _fingerprint(model: str, version: str) -> str:
    return "sha256:" + hashlib.sha256(f"{model}@{version}".encode()).hexdigest()[:16]


def _has_model(session: Any, name: str) -> bool:
    from sqlmodel import select

    from modeldeck.core.registry.models import Model

    return session.exec(select(Model.id).where(Model.name == name)).first() is not None


def run(*, reset: bool, port: int, seed_only: bool, json_output: bool) -> None:
    settings = prepare(reset=reset)
    result = seed(settings)
    api_port = free_port(port)
    urls = {"api": f"http://127.0.0.1:{api_port}", "docs": f"http://127.0.0.1:{api_port}/docs"}
    if json_output:
        output.emit_json({**urls, "config": DEMO_CONFIG_FILE, **result})
    else:
        output.success(f"demo world ready in {DEMO_DIR}/ ({result['versions_created']} new versions)")
        output.console.print(f"  API        {urls['api']}/api/v1")
        output.console.print(f"  API docs   {urls['docs']}")
        output.console.print(f"  admin token (shown once): {result['token']}")
        output.console.print("  try: modeldeck status   ·   Ctrl-C stops the demo")
    if seed_only:
        return
    import uvicorn

    from modeldeck.core.api.app import create_app

    uvicorn.run(create_app(settings), host="127.0.0.1", port=api_port, log_level="warning")
