"""A small, realistic world for the dashboard tests, built through the real services.

Registry, rollouts (simulated clusters), approvals, rollbacks and alerts go through their
service functions with a clock in the past; check results and GPU aggregates are inserted as
the scheduler would have written them (the checks' own `details` format).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Severity
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import FixedClock, as_utc
from modeldeck.core.config import Settings, load_settings
from modeldeck.core.environments import service as environments
from modeldeck.core.hardware.models import GpuUsageHourly, HardwareScrape
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import Model, ModelCreate, ModelVersionCreate
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment

CAROL = Actor(name="carol", role=Role.deployer, via="cli")
BOB = Actor(name="bob", role=Role.approver, via="cli")
EMAILS = {
    "deployer@acme.io": "deployer",
    "approver@acme.io": "approver",
    "viewer@acme.io": "viewer",
}
DRIFT_COLUMNS = ("amount", "country", "channel", "hour")


def config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """The test modeldeck.yaml: staging (L4), then production (A100, one approval)."""
    data: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/modeldeck.db",
        "data_dir": str(tmp_path / "data"),
        "clusters": [
            {"name": "gpu-l4", "backend": "simulated", "gpu_model": "L4"},
            {"name": "gpu-a100", "backend": "simulated", "gpu_model": "A100"},
        ],
        "environments": [
            {"name": "staging", "cluster": "gpu-l4", "namespace": "ml-staging"},
            {
                "name": "production",
                "cluster": "gpu-a100",
                "namespace": "ml-prod",
                "requires_previous": "staging",
                "approvals_required": 1,
            },
        ],
        "roles": {"emails": EMAILS},
        "api": {"public_url": "https://modeldeck.test"},
    }
    data.update(overrides)
    return data


def write_config(tmp_path: Path, **overrides: Any) -> tuple[Path, Settings]:
    path = tmp_path / "modeldeck.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, **overrides)))
    return path, load_settings(path)


def now_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class World:
    settings: Settings
    now: datetime
    deployments: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)


def register(
    session: Session, model: str, team: str, version: str, metrics: dict[str, float], at: datetime
) -> None:
    registry.register_version(
        session,
        model_name=model,
        actor=CAROL,
        clock=FixedClock(at),
        data=ModelVersionCreate(
            version=version,
            image=f"ghcr.io/acme/{model}:{version}",
            artifact_uri=f"s3://models/{model}/{version}/model.pkl",
            training_data_fingerprint=f"sha256:{model}-{version}",
            metrics=metrics,
            git_commit="abc1234def",
        ),
        create_model_if_missing=ModelCreate(
            name=model, team=team, owner=f"{team}@acme.io", description=f"{model} of team {team}"
        ),
    )


def promote(
    session: Session, settings: Settings, model: str, version: str, env: str, at: datetime
) -> int:
    dep = rollouts.promote(
        session,
        settings=settings,
        model=model,
        version=version,
        environment=env,
        actor=CAROL,
        reason=f"ship {version}",
        clock=FixedClock(at),
    )
    if dep.state == "awaiting_approval":
        dep = rollouts.approve(
            session,
            settings=settings,
            deployment_id=dep.id,
            actor=BOB,
            clock=FixedClock(at + timedelta(minutes=30)),
        )
    assert dep.state == "active", dep
    return dep.id


def seed_registry(session: Session, settings: Settings, now: datetime) -> World:
    environments.sync(session, settings)
    world = World(settings=settings, now=now)
    day = timedelta(days=1)
    register(
        session, "fraud-detector", "risk", "1.0.0", {"accuracy": 0.95, "auc": 0.93}, now - 30 * day
    )
    register(
        session, "fraud-detector", "risk", "1.1.0", {"accuracy": 0.96, "auc": 0.94}, now - 8 * day
    )
    register(session, "churn-predictor", "growth", "2.0.0", {"auc": 0.84}, now - 12 * day)
    register(session, "search-ranker", "search", "3.1.0", {"auc": 0.88}, now - 2 * day)
    d = world.deployments
    d["fraud-staging-1.0.0"] = promote(
        session, settings, "fraud-detector", "1.0.0", "staging", now - 20 * day
    )
    d["fraud-prod-1.0.0"] = promote(
        session, settings, "fraud-detector", "1.0.0", "production", now - 19 * day
    )
    d["fraud-staging-1.1.0"] = promote(
        session, settings, "fraud-detector", "1.1.0", "staging", now - 6 * day
    )
    d["fraud-prod-1.1.0"] = promote(
        session, settings, "fraud-detector", "1.1.0", "production", now - 5 * day
    )
    d["churn-staging-2.0.0"] = promote(
        session, settings, "churn-predictor", "2.0.0", "staging", now - 10 * day
    )
    back = rollouts.rollback(
        session,
        settings=settings,
        model="fraud-detector",
        environment="staging",
        actor=CAROL,
        reason="latency regression",
        clock=FixedClock(now - 3 * day),
    )
    d["fraud-staging-rollback"] = back.id
    return world


def _drift_details(hours_ago: int) -> tuple[dict[str, Any], CheckStatus, float]:
    drifting = hours_ago < 48  # `amount` drifts over the last two days
    columns: dict[str, dict[str, Any]] = {}
    for name in DRIFT_COLUMNS:
        numeric = name in ("amount", "hour")
        drifted = drifting and name == "amount"
        score = (0.4 if drifted else 0.02) if numeric else (0.001 if drifted else 0.6)
        columns[name] = {
            "column": name,
            "kind": "numerical" if numeric else "categorical",
            "method": "wasserstein" if numeric else "chisquare",
            "method_display": "Wasserstein distance (normed)" if numeric else "chi-square p_value",
            "threshold": 0.1 if numeric else 0.05,
            "score": score,
            "drifted": drifted,
            "reference_rows": 5000,
            "current_rows": 400,
            "error": None,
        }
    share = sum(c["drifted"] for c in columns.values()) / len(columns)
    status = CheckStatus.warn if share else CheckStatus.ok
    return (
        {
            "columns": columns,
            "share_drifted": share,
            "drifted_count": int(share * 4),
            "columns_tested": 4,
            "dataset_drift": False,
            "drift_share": 0.5,
            "prediction": {
                "column": "prediction",
                "kind": "categorical",
                "method": "jensenshannon",
                "threshold": 0.1,
                "score": 0.02,
                "drifted": False,
                "error": None,
            },
        },
        status,
        share,
    )


def _quality_details(hours_ago: int) -> tuple[dict[str, Any], CheckStatus, float]:
    broken = hours_ago < 24  # upstream broke yesterday: `country` gets a new value
    columns = {}
    for name in DRIFT_COLUMNS:
        new = {"XX": 37} if broken and name == "country" else {}
        missing = 0.3 if broken and name == "channel" else 0.01
        problems = [f"{missing:.1%} missing"] if missing > 0.06 else []
        problems += ["37 values in categories the reference never had: XX"] if new else []
        columns[name] = {
            "kind": "categorical",
            "rows": 400,
            "missing_share": missing,
            "missing_threshold": 0.06,
            "reference_missing_share": 0.01,
            "type_mismatches": 0,
            "new_categories": new,
            "new_category_share": 0.09 if new else 0.0,
            "status": "fail" if problems else "ok",
            "problems": problems,
            "warnings": [],
            "problem": "; ".join(problems) or None,
        }
    failing = sum(1 for c in columns.values() if c["status"] == "fail")
    status = CheckStatus.fail if failing else CheckStatus.ok
    return (
        {"columns": columns, "rows": 400, "problems": [], "warnings": []},
        status,
        failing / len(columns),
    )


def _decay_details(hours_ago: int) -> tuple[dict[str, Any], CheckStatus, float]:
    labelled = hours_ago >= 24  # labels arrive a day late
    accuracy = 0.95 - 0.0005 * max(0, 240 - hours_ago) / 10
    entry = {
        "realised": round(accuracy, 4) if labelled else None,
        "estimated": round(accuracy + 0.004, 4),
        "reference": 0.96,
        "reference_source": "version metrics",
        "higher_is_better": True,
    }
    drop = (0.96 - accuracy) / 0.96
    segments = {
        seg: {
            "rows": 200,
            "source": "realised" if labelled else "estimated",
            "metrics": {
                "accuracy": {
                    **entry,
                    "realised": round(accuracy - off, 4) if labelled else None,
                    "estimated": round(accuracy - off + 0.004, 4),
                }
            },
        }
        for seg, off in (("web", 0.0), ("app", 0.03))
    }
    return (
        {
            "source": "realised" if labelled else "estimated",
            "metrics": {"accuracy": entry},
            "metric": "accuracy",
            "value": entry["realised"] or entry["estimated"],
            "reference": 0.96,
            "drop": drop,
            "rows": 400,
            "segment_column": "channel",
            "segments": segments,
        },
        CheckStatus.warn if drop > 0.025 else CheckStatus.ok,
        drop,
    )


BUILDERS = {
    CheckKind.drift: _drift_details,
    CheckKind.quality: _quality_details,
    CheckKind.decay: _decay_details,
}


def seed_checks(session: Session, world: World, hours: int = 20 * 24) -> None:
    """Hourly drift/quality/decay results of fraud-detector in production."""
    prod = [
        session.get(Deployment, world.deployments[k])
        for k in ("fraud-prod-1.0.0", "fraud-prod-1.1.0")
    ]
    rows = []
    for h in range(hours, 0, -1):
        end = world.now - timedelta(hours=h - 1)
        live = [
            d
            for d in prod
            if d is not None and d.activated_at is not None and as_utc(d.activated_at) <= end
        ]
        if not live:
            continue
        dep = live[-1]
        for kind, build in BUILDERS.items():
            details, status, score = build(h - 1)
            rows.append(
                CheckResult(
                    deployment_id=dep.id or 0,
                    kind=kind,
                    status=status,
                    window_start=end - timedelta(hours=1),
                    window_end=end,
                    score=score,
                    details=details,
                    rows=400,
                    duration_ms=40,
                )
            )
    session.add_all(rows)
    session.commit()
    for kind in BUILDERS:
        newest = session.exec(
            select(CheckResult)
            .where(CheckResult.kind == kind)
            .order_by(col(CheckResult.window_end).desc())
        ).first()
        assert newest is not None and newest.id is not None
        world.checks[str(kind)] = newest.id


def seed_alerts(session: Session, world: World) -> None:
    model = session.exec(select(Model).where(Model.name == "fraud-detector")).one()
    dep = session.get(Deployment, world.deployments["fraud-prod-1.1.0"])
    assert dep is not None
    ids = {"model_id": model.id, "version_id": dep.version_id, "environment_id": dep.environment_id}
    clock = FixedClock(world.now - timedelta(hours=2))
    drift = alerts.fire(
        session,
        settings=world.settings,
        rule="drift",
        severity=Severity.warning,
        clock=clock,
        summary="Data drift in fraud-detector 1.1.0 in production: amount",
        details={
            "metric": "share of drifted columns",
            "value": 0.25,
            "threshold": 0.5,
            "top_features": ["amount (wasserstein 0.4)"],
        },
        **ids,
    )
    quality = alerts.fire(
        session,
        settings=world.settings,
        rule="quality",
        severity=Severity.critical,
        clock=clock,
        summary="Data quality failed in fraud-detector 1.1.0 in production",
        details={"metric": "data quality problems", "value": 2},
        **ids,
    )
    old = alerts.fire(
        session,
        settings=world.settings,
        rule="no_data",
        severity=Severity.warning,
        summary="No predictions for 7 h",
        details={},
        clock=FixedClock(world.now - timedelta(days=4)),
        **ids,
    )
    alerts.resolve(
        session,
        settings=world.settings,
        rule="no_data",
        clock=FixedClock(world.now - timedelta(days=3)),
        **ids,
    )
    world.alerts.update(drift=drift.id or 0, quality=quality.id or 0, old=old.id or 0)


def seed_gpu(session: Session, world: World, hours: int = 5 * 24) -> None:
    """fraud-detector 1.1.0 on an A100 in production and an L4 in staging (until the
    rollback), plus one pod nobody could attribute; one good scrape with an idle finding."""
    model = session.exec(select(Model).where(Model.name == "fraud-detector")).one()
    prod = session.get(Deployment, world.deployments["fraud-prod-1.1.0"])
    stage = session.get(Deployment, world.deployments["fraud-staging-1.1.0"])
    assert prod is not None and stage is not None
    rows = []
    for h in range(hours, 0, -1):
        hour = world.now - timedelta(hours=h)
        rows.append(
            GpuUsageHourly(
                hour=hour,
                cluster="gpu-a100",
                node="a100-node-1",
                gpu_uuid="GPU-a100-0",
                gpu_model="NVIDIA A100-SXM4-80GB",
                namespace="ml-prod",
                pod="fraud-detector-abc",
                model_id=model.id,
                version_id=prod.version_id,
                environment_id=prod.environment_id,
                attribution="pod_labels",
                util_mean=60.0,
                util_p95=80.0,
                memory_used_mib=20480.0,
                memory_total_mib=81920.0,
                power_watts=250.0,
                energy_wh=250.0,
                gpu_seconds=3600.0,
                samples=60,
            )
        )
        if h > 72:
            rows.append(
                GpuUsageHourly(
                    hour=hour,
                    cluster="gpu-l4",
                    node="l4-node-1",
                    gpu_uuid="GPU-l4-0",
                    gpu_model="NVIDIA L4",
                    namespace="ml-staging",
                    pod="fraud-detector-xyz",
                    model_id=model.id,
                    version_id=stage.version_id,
                    environment_id=stage.environment_id,
                    attribution="pod_labels",
                    util_mean=30.0,
                    util_p95=45.0,
                    memory_used_mib=10240.0,
                    memory_total_mib=23034.0,
                    power_watts=55.0,
                    energy_wh=55.0,
                    gpu_seconds=3600.0,
                    samples=60,
                )
            )
        rows.append(
            GpuUsageHourly(
                hour=hour,
                cluster="gpu-a100",
                node="a100-node-2",
                gpu_uuid="GPU-a100-5",
                gpu_model="NVIDIA A100-SXM4-80GB",
                namespace="ml-prod",
                pod="mystery-pod-1",
                attribution="none",
                util_mean=2.0,
                util_p95=3.0,
                gpu_seconds=3600.0,
                samples=60,
            )
        )
    session.add_all(rows)
    session.add(
        HardwareScrape(
            started_at=world.now - timedelta(hours=3),
            finished_at=world.now - timedelta(hours=3),
            window_start=world.now - timedelta(hours=4),
            window_end=world.now - timedelta(hours=3),
            ok=True,
            rows=3,
            series=3,
            queries=7,
            findings=[
                {
                    "kind": "idle",
                    "severity": "warning",
                    "cluster": "gpu-a100",
                    "summary": (
                        "search-ranker 3.1.0 holds GPU GPU-a100-7 at 0.4% utilisation for 6h"
                    ),
                    "fix": "scale the deployment down or move the model to a smaller GPU",
                    "model": "search-ranker",
                    "version": "3.1.0",
                    "environment": "production",
                },
                {
                    "kind": "attribution",
                    "severity": "warning",
                    "cluster": "gpu-a100",
                    "summary": "1 pod on gpu-a100 matches no model target: mystery-pod-1",
                    "fix": "label the serving pods modeldeck.io/model and modeldeck.io/version",
                },
                {
                    "kind": "missing_labels",
                    "severity": "info",
                    "summary": "Prometheus has no metric named 'kube_pod_labels'; pods are "
                    "attributed by their names only",
                },
            ],
        )
    )
    session.commit()


def build(
    engine: Engine,
    settings: Settings,
    *,
    checks: bool = True,
    gpu: bool = True,
    with_alerts: bool = True,
) -> World:
    with Session(engine, expire_on_commit=False) as session:
        world = seed_registry(session, settings, now_hour())
        if checks:
            seed_checks(session, world)
        if with_alerts:
            seed_alerts(session, world)
        if gpu:
            seed_gpu(session, world)
    return world


def seed_predictions(session: Session, world: World, rows: int = 600) -> int:
    """Real monitoring data for fraud-detector 1.1.0 in production: a reference set and
    `rows` predictions over the last 3 hours through the ingestion service (Parquet store).
    Returns the number of predictions stored."""
    import numpy as np
    import pandas as pd

    from modeldeck.core.monitoring import service as monitoring

    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 50.0, 2000),
            "country": rng.choice(["DE", "FR", "IT"], 2000),
            "prediction": rng.integers(0, 2, 2000),
            "label": rng.integers(0, 2, 2000),
        }
    )
    monitoring.set_reference(
        session,
        settings=world.settings,
        model="fraud-detector",
        version="1.1.0",
        frame=reference,
        actor=CAROL,
    )
    stamps = [world.now - timedelta(minutes=int(m)) for m in rng.integers(1, 180, rows)]
    batch = pd.DataFrame(
        {
            "prediction_id": [f"p-{i}" for i in range(rows)],
            "timestamp": stamps,
            "amount": rng.gamma(2.0, 80.0, rows),
            "country": rng.choice(["DE", "FR", "IT"], rows),
            "prediction": rng.integers(0, 2, rows),
        }
    )
    result = monitoring.ingest_predictions(
        session,
        settings=world.settings,
        model="fraud-detector",
        version="1.1.0",
        environment="production",
        frame=batch,
        actor=CAROL,
    )
    return int(result.rows)
