"""Replay the 90-day timeline through the production services with a clock moving through it.

Registration, reference data, promotions, approvals, the rollback, ingestion of predictions
and labels, checks and alerts all go through the same service functions the API, the bot and
the scheduler call; only the data comes from the generator and the time from a FixedClock.
The history is replayed a day at a time: the day's events happen at their times, then its
predictions are ingested (each to the version that served it then), then the labels that
arrived during it, and every active deployment is checked over the 24 hours that end there.
The scheduler's live cadence is 15 minutes; one check per window keeps seeding under two
minutes, and staging history older than two weeks is checked every third day only.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.alerts.models import OPEN, Alert
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.demo import data, world
from modeldeck.core.demo.traffic import Schedule, Traffic
from modeldeck.core.environments.models import Environment
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import flows
from modeldeck.core.monitoring import service as monitoring
from modeldeck.core.monitoring.performance import Task, positive_class, realised
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import (
    Model,
    ModelCreate,
    ModelVersion,
    ModelVersionCreate,
    TaskType,
)
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment, DeploymentPublic, DeploymentState

STEP_HOURS = 24
ROLLOUT_WAIT = timedelta(seconds=30)  # simulated rollouts take rollout_seconds (20 s)
Progress = Callable[[str, float], None]  # (what is happening, days done)


@dataclass
class Counters:
    predictions: int = 0
    labels: int = 0
    checks: int = 0
    deployments: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "predictions": self.predictions,
            "labels": self.labels,
            "checks": self.checks,
            "deployments": self.deployments,
            "seconds": round(self.seconds, 1),
        }


class Seeder:
    """Builds the world into an empty, migrated database and data dir."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        end: datetime,
        models: tuple[str, ...] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.models = [m for m in world.MODELS if models is None or m.name in models]
        self.engine = engine
        self.end = end
        self.start = end - timedelta(days=world.DAYS)
        self.clock = FixedClock(self.start)
        self.progress = progress or (lambda _what, _days: None)
        self.counters = Counters()
        self.schedule = Schedule()
        self.traffic = {m.name: Traffic(m, self.start) for m in self.models}

    # --- the replay ------------------------------------------------------------------------

    def run(self) -> Counters:
        began = time.perf_counter()
        with Session(self.engine, expire_on_commit=False) as session:
            names = {m.name for m in self.models}
            events = [e for e in world.timeline() if e.model in names]
            step = timedelta(hours=STEP_HOURS)
            boundary = self.start + step
            while boundary <= self.end:
                while events and self._at(events[0].day) < boundary:
                    event = events.pop(0)
                    self.clock.now = self._at(event.day)
                    self.progress(f"{event.kind} {event.model} {event.version}".strip(), event.day)
                    self._apply(session, event)
                self.clock.now = boundary
                self._ingest(session, boundary - step, boundary)
                self._check(session, boundary)
                self.progress("checks", (boundary - self.start) / timedelta(days=1))
                boundary += step
        self.counters.seconds = time.perf_counter() - began
        return self.counters

    def _at(self, day: float) -> datetime:
        return self.start + timedelta(days=day)

    # --- registry and rollouts -----------------------------------------------------------

    def _apply(self, session: Session, event: world.Event) -> None:
        spec = world.model(event.model)
        if event.kind == "register":
            self._register(session, spec, spec.release(event.version))
        elif event.kind == "staging":
            self._finish(
                session,
                rollouts.promote(
                    session,
                    settings=self.settings,
                    model=spec.name,
                    version=event.version,
                    environment=world.STAGING,
                    actor=world.CI,
                    clock=self.clock,
                    reason="passed offline evaluation",
                    idempotency_key=_key(event),
                ),
            )
        elif event.kind == "request":
            rollouts.promote(
                session,
                settings=self.settings,
                model=spec.name,
                version=event.version,
                environment=world.PRODUCTION,
                actor=spec.actor,
                reason=event.reason,
                clock=self.clock,
                idempotency_key=_key(event),
            )
        elif event.kind == "approve":
            waiting = _awaiting(session, spec.name, event.version)
            self._finish(
                session,
                rollouts.approve(
                    session,
                    settings=self.settings,
                    deployment_id=waiting,
                    actor=world.APPROVER,
                    comment="metrics look good, go",
                    clock=self.clock,
                ),
            )
        elif event.kind == "rollback":
            self._finish(
                session,
                rollouts.rollback(
                    session,
                    settings=self.settings,
                    model=spec.name,
                    environment=str(event.extra["environment"]),
                    actor=spec.actor,
                    reason=event.reason,
                    clock=self.clock,
                    idempotency_key=_key(event),
                ),
            )

    def _register(self, session: Session, spec: world.ModelSpec, rel: world.Release) -> None:
        holdout = data.reference(spec.name, rel.version, rel.registered, self.start)
        table = holdout.slice(0, world.REFERENCE_ROWS)
        registry.register_version(
            session,
            model_name=spec.name,
            actor=world.CI,
            clock=self.clock,
            data=ModelVersionCreate(
                version=rel.version,
                image=f"ghcr.io/acme/{spec.name}:{rel.version}",
                artifact_uri=f"s3://acme-models/{spec.name}/{rel.version}/model.tar.gz",
                training_data_fingerprint="sha256:" + _digest(f"{spec.name}/{rel.version}/data"),
                git_commit=_digest(f"{spec.git_repo}@{rel.version}")[:40],
                metrics=holdout_metrics(holdout, spec.task_type),
                params={
                    "repository": spec.git_repo,
                    "training_days": 7,
                    "reference_rows": table.num_rows,
                },
            ),
            create_model_if_missing=ModelCreate(
                name=spec.name,
                description=spec.description,
                owner=spec.owner,
                team=spec.team,
                task_type=TaskType(spec.task_type),
            ),
        )
        monitoring.set_reference(
            session,
            settings=self.settings,
            model=spec.name,
            version=rel.version,
            frame=table,
            actor=world.CI,
            clock=self.clock,
        )

    def _finish(self, session: Session, deployment: DeploymentPublic) -> None:
        """Follow a rollout to the end as the scheduler would, a moment later."""
        self.clock.advance(seconds=ROLLOUT_WAIT.total_seconds())
        done = rollouts.advance(
            session, settings=self.settings, deployment_id=deployment.id, clock=self.clock
        )
        if done.state != DeploymentState.active:
            raise RuntimeError(f"demo rollout #{done.id} ended {done.state}: {done.message}")
        self.counters.deployments += 1
        assert done.activated_at is not None
        self.schedule.add(done.model, done.environment, done.activated_at.timestamp(), done.version)

    # --- traffic ---------------------------------------------------------------------------

    def _ingest(self, session: Session, lo: datetime, hi: datetime) -> None:
        """Predictions of [lo, hi) first, then the labels that arrived meanwhile (a label
        always follows its prediction)."""
        for spec in self.models:
            self.counters.predictions += self.traffic[spec.name].predictions(
                session,
                settings=self.settings,
                schedule=self.schedule,
                lo=lo,
                hi=hi,
                clock=self.clock,
            )
        for spec in self.models:
            self.counters.labels += self.traffic[spec.name].labels(
                session,
                settings=self.settings,
                schedule=self.schedule,
                lo=lo,
                hi=hi,
                clock=self.clock,
            )

    # --- checks ----------------------------------------------------------------------------

    def _check(self, session: Session, at: datetime) -> None:
        """Check every active deployment over the day that ends at `at`; older staging
        history is checked every few days only (seeding time; production is checked daily)."""
        day = round((at - self.start) / timedelta(days=1))
        query = (
            select(Deployment.id)
            .join(Model)
            .where(
                Deployment.state == DeploymentState.active,
                col(Model.name).in_([m.name for m in self.models]),
            )
        )
        if day < world.DAYS - 14 and day % world.STAGING_HISTORY_EVERY:
            query = query.join(Environment).where(Environment.name != world.STAGING)
        ids = session.exec(query.order_by(Deployment.id)).all()
        for deployment_id in ids:
            assert deployment_id is not None
            flows.check_and_alert(
                session,
                settings=self.settings,
                deployment_id=deployment_id,
                window_end=at,
                clock=self.clock,
            )
            self.counters.checks += 3


def _awaiting(session: Session, model: str, version: str) -> int:
    row = session.exec(
        select(Deployment.id)
        .join(Model)
        .join(ModelVersion)
        .where(
            Model.name == model,
            ModelVersion.version == version,
            Deployment.state == DeploymentState.awaiting_approval,
        )
    ).first()
    if row is None:
        raise RuntimeError(f"no request of {model} {version} awaits approval")
    return row


def _key(event: world.Event) -> str:
    return f"demo:{event.kind}:{event.model}:{event.version}:{event.day}"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def holdout_metrics(table: pa.Table, task_type: str) -> dict[str, float]:
    """What the training pipeline reports for the version: its scores on the reference."""
    y_true = table.column(C.LABEL).to_numpy(zero_copy_only=False)
    y_pred = table.column(C.PREDICTION).to_numpy(zero_copy_only=False)
    if task_type != "classification":
        task = Task(type=task_type)
        return {
            k: round(v, 4) for k, v in realised(task, y_true, y_pred, None).items() if v is not None
        }
    proba = [n for n in table.column_names if n.startswith(C.PROBA_PREFIX)]
    classes = sorted({*y_true.tolist(), *y_pred.tolist()})
    positive = positive_class(classes, [C.proba_class(n) for n in proba])
    task = Task(type=task_type, classes=tuple(classes), positive=positive)
    p = table.column(proba[0]).to_numpy(zero_copy_only=False)
    matrix = np.column_stack([1 - p, p]) if classes[1] == positive else np.column_stack([p, 1 - p])
    return {
        k: round(v, 4) for k, v in realised(task, y_true, y_pred, matrix).items() if v is not None
    }


def open_alerts(session: Session) -> list[Alert]:
    return list(session.exec(select(Alert).where(col(Alert.status).in_(OPEN))).all())
