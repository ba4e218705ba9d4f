"""One deployment's data over one time window, loaded once and shared by its checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlmodel import Session

from modeldeck.core import db
from modeldeck.core.clock import Clock, as_utc
from modeldeck.core.config import CheckConfig, Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import NotFound
from modeldeck.core.monitoring import columns as C
from modeldeck.core.monitoring import labels, reference
from modeldeck.core.monitoring.models import CheckStatus
from modeldeck.core.monitoring.profile import Profile
from modeldeck.core.monitoring.store import Store
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts import context as deployment_rows
from modeldeck.core.rollouts.models import Deployment


@dataclass
class Window:
    settings: Settings
    deployment: Deployment
    model: Model
    version: ModelVersion
    environment: Environment
    cfg: CheckConfig
    start: datetime
    end: datetime
    profile: Profile | None = None
    table: pa.Table | None = None
    mismatches: dict[str, int] = field(default_factory=dict)
    load_error: str | None = None
    store_labels: pa.Table | None = None  # the label store, when the caller read it already
    _labels: pa.Table | None = None

    @property
    def rows(self) -> int:
        return self.table.num_rows if self.table is not None else 0

    @property
    def subject(self) -> str:
        return f"{self.model.name} {self.version.version} in {self.environment.name}"

    def require_profile(self) -> Profile:
        if self.profile is None:
            raise RuntimeError(self.load_error or "no reference profile")
        return self.profile

    def require_table(self) -> pa.Table:
        if self.table is None:
            raise RuntimeError(self.load_error or "the window could not be read")
        return self.table

    def frame(self, columns: list[str]) -> pd.DataFrame:
        """Window columns as pandas with strings as categoricals (fast value counts)."""
        # split_blocks: numeric columns without gaps share Arrow's memory instead of copying
        return (
            self.require_table()
            .select(columns)
            .to_pandas(strings_to_categorical=True, split_blocks=True)
        )

    def labelled(self) -> pa.Table:
        """The window's predictions that have a label, with a `label` column."""
        if self._labels is None:
            table = self.require_table()
            labels = self.store_labels
            if labels is None:
                labels = Store(self.settings.data_dir).read_labels(
                    self.model.name, self.start.date()
                )
            if labels is None or table.num_rows == 0:
                self._labels = table.slice(0, 0).append_column(
                    C.LABEL, pa.array([], _label_type(self.model))
                )
            else:
                self._labels = table.join(
                    labels.select([C.PREDICTION_ID, C.LABEL]),
                    keys=C.PREDICTION_ID,
                    join_type="inner",
                )
        return self._labels

    def last_label_at(self, lookback: timedelta) -> datetime | None:
        """When the newest label of this deployment arrived, within `lookback` of the end."""
        return labels.last_arrival(
            Store(self.settings.data_dir),
            model=self.model.name,
            version=self.version.version,
            environment=self.environment.name,
            since=self.end - lookback,
        )


def _label_type(model: Model) -> pa.DataType:
    return pa.float64() if str(model.task_type) == "regression" else pa.string()


def load(
    session: Session,
    *,
    settings: Settings,
    deployment_id: int,
    window_end: datetime | None,
    clock: Clock,
    window_start: datetime | None = None,
    reference_hash: str | None = None,
) -> Window:
    """Resolve the deployment and read its window. An unknown deployment is NotFound; any
    other failure is kept in `load_error` so each check records it as its own error."""
    deployment = db.get_by_id(session, Deployment, deployment_id)
    if deployment is None:
        raise NotFound(f"no deployment with id {deployment_id}")
    ctx = deployment_rows.load(session, deployment)
    model, version, environment = ctx.model, ctx.version, ctx.env
    cfg = settings.check_config(model.name)
    end = as_utc(window_end) if window_end is not None else clock()
    start = as_utc(window_start) if window_start else end - timedelta(minutes=cfg.window_minutes)
    window = Window(
        settings=settings,
        deployment=deployment,
        model=model,
        version=version,
        environment=environment,
        cfg=cfg,
        start=start,
        end=end,
    )
    try:
        window.profile = reference.ensure_profile(
            session, settings=settings, model=model, version=version, clock=clock
        )
        if reference_hash and reference_hash != window.profile.hash:
            window.profile = reference.past_profile(
                settings, model, version, reference_hash, window.profile
            )
        store = Store(settings.data_dir)
        parts = store.read_window(
            store.predictions_dir(model.name, version.version, environment.name),
            window.start,
            window.end,
        )
        window.table, window.mismatches = conform_stored(parts, window.profile)
        del parts
        pa.default_memory_pool().release_unused()  # Parquet decoding buffers
    except Exception as exc:  # recorded per check as status=error, never a gap
        session.rollback()
        window.load_error = f"{type(exc).__name__}: {exc}"
    return window


def conform_stored(parts: list[pa.Table], profile: Profile) -> tuple[pa.Table, dict[str, int]]:
    """Bring stored files to the profile's types (files written under an older reference may
    differ); values that do not fit are counted per column as type mismatches."""
    mismatches: dict[str, int] = {}
    tables = []
    for part in parts:
        arrays: dict[str, Any] = {
            C.PREDICTION_ID: part.column(C.PREDICTION_ID),
            C.TIMESTAMP: part.column(C.TIMESTAMP),
        }
        for name in part.column_names:
            if name in (C.PREDICTION_ID, C.TIMESTAMP):
                continue
            spec = profile.columns.get(name)
            if spec is None:
                if name == C.PREDICTION:
                    arrays[name] = part.column(name)
                continue
            arrays[name], bad = C.lenient_conform(part.column(name), spec.dtype)
            if bad:
                mismatches[name] = mismatches.get(name, 0) + bad
        for name, spec in profile.features.items():
            if name not in arrays:
                arrays[name] = pa.nulls(part.num_rows, C.STORAGE_TYPES[spec.dtype])
        tables.append(pa.table(arrays))
    if not tables:
        return _empty(profile), mismatches
    # File order (by first timestamp), rows as ingested: no re-sort, which would change the
    # order categories are first seen in and so the order evidently sums over them.
    table = pa.concat_tables(tables, promote_options="permissive")
    # One chunk per column lets pandas share the memory instead of copying it per check.
    chunked = any(column.num_chunks > 1 for column in table.columns)
    return (table.combine_chunks() if chunked else table), mismatches


def _empty(profile: Profile) -> pa.Table:
    arrays: dict[str, pa.Array] = {
        C.PREDICTION_ID: pa.array([], pa.string()),
        C.TIMESTAMP: pa.array([], C.UTC_US),
    }
    for name, spec in profile.columns.items():
        if spec.role in ("feature", "prediction", "proba"):
            arrays[name] = pa.array([], C.STORAGE_TYPES[spec.dtype])
    return pa.table(arrays)


def numpy_column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


@dataclass
class Outcome:
    """What a check found, before it is stored as a CheckResult."""

    status: CheckStatus
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    score: float | None = None


def worst(statuses: list[CheckStatus]) -> CheckStatus:
    order = [CheckStatus.ok, CheckStatus.warn, CheckStatus.fail]
    return max(statuses, key=order.index, default=CheckStatus.ok)
