"""Which model version held a GPU at a given moment.

Two ways, best first:
1. kube-state-metrics' `kube_pod_labels` with modeldeck.io/model and modeldeck.io/version: the
   pod says what it serves. The values are matched as the Kubernetes backend writes them
   (`clusters.k8s.label_value`: "1.0.0+cu121" is labelled "1.0.0_cu121"); labels that name no
   registered version (or two) fall back to the pod name.
2. The pod name: a pod of environment E serving model M is named after E's target for M
   (`fraud-detector-7d9f8-x2x7q` for target `{model}`), in E's cluster and namespace; the
   version is whatever the deployment history says was active in E at that moment
   (`activated_at` until `finished_at`), so a version's usage stops counting the moment it is
   rolled back, even when the pod keeps its name.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, TypeVar

from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from modeldeck.core.clock import as_utc
from modeldeck.core.clusters.k8s import label_value
from modeldeck.core.environments.models import Environment
from modeldeck.core.hardware.collect import SeriesKey
from modeldeck.core.hardware.models import Attribution
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts.models import Deployment

_FOREVER = float("inf")
K = TypeVar("K")


class Reason(StrEnum):
    """Why a GPU series has no version (the finding says how to fix each)."""

    free = "free"  # no pod holds the GPU: not a failure
    no_environment = "no_environment"  # no environment in this cluster/namespace
    no_target = "no_target"  # pod name matches no model's target
    no_version = "no_version"  # matched a model, but nothing was active then
    unknown_labels = "unknown_labels"  # pod labels name an unregistered model/version


class Owner(NamedTuple):
    model_id: int
    version_id: int
    environment_id: int | None
    method: Attribution


@dataclass(frozen=True)
class _Match:
    """A pod tied to (environment, model) by its name; the version depends on the time."""

    environment_id: int
    model_id: int


@dataclass
class _History:
    starts: list[float]
    ends: list[float]
    versions: list[int]


class Attributor:
    """Loaded once per scrape: environments, registry names, deployment intervals."""

    def __init__(self, session: Session, pod_labels: dict[tuple[str, str, str], tuple[str, str]]):
        envs = session.exec(select(Environment)).all()
        self.env_names = {e.id: e.name for e in envs if e.id is not None}
        models = session.exec(select(Model.id, Model.name)).all()
        self.model_ids = {name: mid for mid, name in models}
        self.model_names = dict(models)
        versions = session.exec(
            select(ModelVersion.id, ModelVersion.model_id, ModelVersion.version)
        ).all()
        self.version_ids = {(mid, v): vid for vid, mid, v in versions}
        self.version_names = {vid: v for vid, _, v in versions}
        # Pod labels carry sanitised values; a value two names sanitise to is ambiguous (None).
        self._label_models = _unique((label_value(name), mid) for mid, name in models)
        self._label_versions = _unique(((mid, label_value(v)), vid) for vid, mid, v in versions)
        self.places: dict[tuple[str, str], list[Environment]] = defaultdict(list)
        for env in envs:
            self.places[(env.cluster, env.namespace)].append(env)
        self.history = _load_history(session)
        self.pod_labels = pod_labels
        self._matches: dict[tuple[str, str, str], _Match | Owner | Reason] = {}

    def timeline(self, key: SeriesKey) -> Callable[[int], Owner | Reason]:
        """`owner` for one series, with the pod's match looked up once (the hot loop)."""
        if not key.pod:
            return lambda _: Reason.free
        place = (key.cluster, key.namespace, key.pod)
        match = self._matches.get(place)
        if match is None:
            match = self._matches[place] = self._match(key)
        if not isinstance(match, _Match):
            fixed = match
            return lambda _: fixed
        hist = self.history.get((match.environment_id, match.model_id))
        if hist is None:
            return lambda _: Reason.no_version
        owners = [
            Owner(match.model_id, v, match.environment_id, Attribution.pod_name)
            for v in hist.versions
        ]
        starts, ends = hist.starts, hist.ends

        def at(ts: int) -> Owner | Reason:
            i = bisect.bisect_right(starts, ts) - 1
            return owners[i] if i >= 0 and ts < ends[i] else Reason.no_version

        return at

    def owner(self, key: SeriesKey, ts: int) -> Owner | Reason:
        """The version holding `key`'s GPU at unix time `ts`, or why there is none."""
        if not key.pod:
            return Reason.free
        place = (key.cluster, key.namespace, key.pod)
        match = self._matches.get(place)
        if match is None:
            match = self._matches[place] = self._match(key)
        if not isinstance(match, _Match):
            return match
        version_id = self._active(match, ts)
        if version_id is None:
            return Reason.no_version
        return Owner(match.model_id, version_id, match.environment_id, Attribution.pod_name)

    def _match(self, key: SeriesKey) -> _Match | Owner | Reason:
        labelled = self.pod_labels.get(
            (key.cluster, key.namespace, key.pod)
        ) or self.pod_labels.get(("", key.namespace, key.pod))
        by_labels = self._by_labels(key, *labelled) if labelled is not None else None
        if isinstance(by_labels, Owner):
            return by_labels
        by_name = self._by_name(key)
        if by_labels is not None and isinstance(by_name, Reason):
            return by_labels  # labelled, but with names nothing matches: say so
        return by_name

    def _by_name(self, key: SeriesKey) -> _Match | Reason:
        envs = self.places.get((key.cluster, key.namespace), [])
        if not envs:
            return Reason.no_environment
        best: tuple[int, _Match] | None = None
        for env in envs:
            assert env.id is not None
            for name, model_id in self.model_ids.items():
                target = env.target_name(name)
                if key.pod == target or key.pod.startswith(target + "-"):
                    if best is None or len(target) > best[0]:  # `fraud-v2` beats `fraud`
                        best = (len(target), _Match(env.id, model_id))
        return best[1] if best else Reason.no_target

    def _by_labels(self, key: SeriesKey, model: str, version: str) -> Owner | Reason:
        model_id = self.model_ids.get(model) or self._label_models.get(model)
        version_id = None
        if model_id is not None:
            version_id = self.version_ids.get((model_id, version)) or self._label_versions.get(
                (model_id, version)
            )
        if model_id is None or version_id is None:
            return Reason.unknown_labels
        env_id = None
        for env in self.places.get((key.cluster, key.namespace), []):
            if env_id is None or (env.id, model_id) in self.history:
                env_id = env.id
        return Owner(model_id, version_id, env_id, Attribution.pod_labels)

    def _active(self, match: _Match, ts: int) -> int | None:
        hist = self.history.get((match.environment_id, match.model_id))
        if hist is None:
            return None
        i = bisect.bisect_right(hist.starts, ts) - 1
        if i < 0 or ts >= hist.ends[i]:
            return None
        return hist.versions[i]

    def describe(self, owner: Owner) -> tuple[str, str, str | None]:
        """(model, version, environment) names for messages."""
        env = self.env_names.get(owner.environment_id) if owner.environment_id else None
        return (self.model_names[owner.model_id], self.version_names[owner.version_id], env)


def _unique(pairs: Iterable[tuple[K, int]]) -> dict[K, int | None]:
    """key -> id, or None where two ids share the key (ambiguous: not used)."""
    out: dict[K, int | None] = {}
    for key, value in pairs:
        out[key] = None if key in out and out[key] != value else value
    return out


def _load_history(session: Session) -> dict[tuple[int, int], _History]:
    """Every deployment that became active, as [activated_at, finished_at) per (env, model)."""
    rows = session.execute(
        select_columns(
            Deployment.environment_id,
            Deployment.model_id,
            Deployment.version_id,
            Deployment.activated_at,
            Deployment.finished_at,
        )
        .where(col(Deployment.activated_at).is_not(None))
        .order_by(col(Deployment.activated_at))
    ).all()
    out: dict[tuple[int, int], _History] = {}
    for env_id, model_id, version_id, activated, finished in rows:
        hist = out.setdefault((env_id, model_id), _History([], [], []))
        hist.starts.append(_ts(activated))
        hist.ends.append(_ts(finished) if finished is not None else _FOREVER)
        hist.versions.append(version_id)
    return out


def _ts(value: datetime) -> float:
    return as_utc(value).timestamp()
