"""Demo traffic into the ingestion service: which version answered, and when labels arrive.

Used by the seeder (history) and by the live feeder (after the history, while the demo runs),
so both send the same data the same way: predictions go to the version that served each
request at its time, the shadow copy to the staging version, and each label arrives at its
drawn time for both answers to the request.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlmodel import Session, col, select

from modeldeck.core.clock import Clock, as_utc
from modeldeck.core.config import Settings
from modeldeck.core.demo import data, world
from modeldeck.core.demo.behaviours import BEHAVIOURS
from modeldeck.core.environments.models import Environment
from modeldeck.core.monitoring import service as monitoring
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts.models import Deployment

LABEL_HORIZON_DAYS = 8  # the longest label delay (7-day churn) plus a margin
ENVIRONMENTS = (world.PRODUCTION, world.STAGING)


class Schedule:
    """Which version served a model in an environment at any time (activation times)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)

    def add(self, model: str, env: str, at: float, version: str) -> None:
        rows = self._rows[(model, env)]
        rows.append((at, version))
        rows.sort()

    def split(self, model: str, env: str, times: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """(version, mask of the requests it answered); nothing before the first rollout."""
        rows = self._rows.get((model, env), [])
        if not rows or not len(times):
            return []
        starts = np.array([t for t, _ in rows])
        which = np.searchsorted(starts, times, side="right") - 1
        return [(version, which == i) for i, (_, version) in enumerate(rows) if (which == i).any()]

    @classmethod
    def from_db(cls, session: Session) -> Schedule:
        """Rebuilt from the deployment history (a rollback re-activates an older version)."""
        out = cls()
        rows = session.exec(
            select(Model.name, Environment.name, ModelVersion.version, Deployment.activated_at)
            .join(Model, col(Model.id) == Deployment.model_id)
            .join(Environment, col(Environment.id) == Deployment.environment_id)
            .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
            .where(col(Deployment.activated_at).is_not(None))
        ).all()
        for model, env, version, activated in rows:
            assert activated is not None
            out.add(model, env, as_utc(activated).timestamp(), version)
        return out


@dataclass(frozen=True)
class Day:
    """One day of a model's requests with their outcomes and label arrival times."""

    requests: data.Requests
    outcomes: np.ndarray
    arrivals: np.ndarray


class Traffic:
    """Generates (with a small cache of recent days) and ingests one model's traffic."""

    def __init__(self, spec: world.ModelSpec, start: datetime) -> None:
        self.spec = spec
        self.start = start
        self._days: dict[int, Day] = {}

    def day(self, index: int) -> Day:
        if index not in self._days:
            keep = {i: d for i, d in self._days.items() if i >= index - LABEL_HORIZON_DAYS}
            requests = data.requests(self.spec.name, index, self.start)
            outcomes = data.outcomes(self.spec.name, requests)
            keep[index] = Day(
                requests, outcomes, data.label_times(self.spec.name, requests, outcomes)
            )
            self._days = keep
        return self._days[index]

    def _day_range(self, lo: datetime, hi: datetime) -> range:
        first = int((lo - self.start) // timedelta(days=1))
        last = int((hi - timedelta(microseconds=1) - self.start) // timedelta(days=1))
        return range(max(first, 0), last + 1)

    def predictions(
        self,
        session: Session,
        *,
        settings: Settings,
        schedule: Schedule,
        lo: datetime,
        hi: datetime,
        clock: Clock,
    ) -> int:
        """Ingest what each environment's version answered to the requests in [lo, hi)."""
        rows = 0
        for index in self._day_range(lo, hi):
            day = self.day(index)
            times = day.requests.times
            inside = (times >= lo.timestamp()) & (times < hi.timestamp())
            batch = subset(day.requests, inside)
            for env in ENVIRONMENTS:
                for version, mask in schedule.split(self.spec.name, env, batch.times):
                    table = data.predictions(
                        self.spec.name, version, subset(batch, mask), shadow=env == world.STAGING
                    )
                    monitoring.ingest_predictions(
                        session,
                        settings=settings,
                        model=self.spec.name,
                        version=version,
                        environment=env,
                        frame=table,
                        actor=world.FEATURE_LOGGER,
                        clock=clock,
                    )
                    rows += table.num_rows
        return rows

    def labels(
        self,
        session: Session,
        *,
        settings: Settings,
        schedule: Schedule,
        lo: datetime,
        hi: datetime,
        clock: Clock,
    ) -> int:
        """Ingest the labels arriving in [lo, hi) for every answer to their request."""
        ids: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for index in self._day_range(lo - timedelta(days=LABEL_HORIZON_DAYS), hi):
            day = self.day(index)
            due = (day.arrivals >= lo.timestamp()) & (day.arrivals < hi.timestamp())
            if not due.any():
                continue
            times = day.requests.times[due]
            for env in ENVIRONMENTS:
                for _, mask in schedule.split(self.spec.name, env, times):
                    base = day.requests.ids[due][mask].astype(str)
                    ids.append(np.char.add(base, "-s") if env == world.STAGING else base)
                    values.append(day.outcomes[due][mask])
        if not ids:
            return 0
        table = data.labels_table(
            np.concatenate(ids), np.concatenate(values), BEHAVIOURS[self.spec.name]
        )
        monitoring.ingest_labels(
            session,
            settings=settings,
            model=self.spec.name,
            frame=table,
            actor=world.FEATURE_LOGGER,
            clock=clock,
        )
        return table.num_rows


def subset(batch: data.Requests, mask: np.ndarray) -> data.Requests:
    return data.Requests(
        ids=batch.ids[mask],
        times=batch.times[mask],
        days=batch.days[mask],
        features={k: v[mask] for k, v in batch.features.items()},
    )
