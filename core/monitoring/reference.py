"""Reference data per version: stored once in the Parquet store, profiled once, cached."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

import pandas as pd
import pyarrow as pa
from sqlmodel import Session, select

from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import SYSTEM, Actor, Role
from modeldeck.core.auth.service import require
from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.errors import InvalidInput, NotFound
from modeldeck.core.monitoring import profile as profiling
from modeldeck.core.monitoring.models import (
    ColumnKind,
    ColumnProfilePublic,
    ReferenceProfile,
    ReferenceProfilePublic,
)
from modeldeck.core.monitoring.profile import Profile
from modeldeck.core.monitoring.store import Store
from modeldeck.core.registry.models import Model, ModelVersion

Columns = dict[str, pd.Series]
_CACHE_SIZE = 4
_cache: OrderedDict[str, pd.DataFrame] = OrderedDict()
_cache_lock = threading.Lock()


def set_reference(
    session: Session,
    *,
    settings: Settings,
    model: Model,
    version: ModelVersion,
    table: pa.Table,
    actor: Actor,
    clock: Clock = utcnow,
    column_types: dict[str, ColumnKind] | None = None,
    source_uri: str | None = None,
) -> ReferenceProfile:
    """Store reference data, profile it, point the version at it; audited as one change."""
    require(actor, Role.deployer, "set reference data")
    computed = profiling.compute(table, task_type=str(model.task_type), column_types=column_types)
    store = Store(settings.data_dir)
    path = (
        f"{store.root}/reference/model={model.name}/version={version.version}/"
        f"{computed.profile.hash}.parquet"
    )
    data_uri = store.uri(store.write_bytes(path, computed.data))
    row = session.exec(
        select(ReferenceProfile).where(ReferenceProfile.version_id == version.id)
    ).first()
    before = (
        {"sha256": row.hash, "rows": row.rows, "data_uri": row.data_uri}
        if row is not None
        else None
    )
    assert version.id is not None
    row = row or ReferenceProfile(version_id=version.id, hash="", data_uri="")
    row.hash = computed.profile.hash
    row.data_uri = data_uri
    row.source_uri = source_uri
    row.rows = computed.profile.rows
    row.columns = profiling.public_columns(computed.profile)
    row.task = computed.profile.task.to_dict()
    row.metrics = computed.profile.metrics
    row.created_by = actor.name
    row.created_at = clock()
    version.reference_data_uri = source_uri or data_uri
    session.add(row)
    session.add(version)
    audit.record(
        session,
        actor=actor,
        action="version.reference",
        target=f"model:{model.name}/version:{version.version}",
        before=before,
        after={
            "sha256": row.hash,
            "rows": row.rows,
            "data_uri": data_uri,
            "source_uri": source_uri,
            "columns": sorted(row.columns),
        },
        clock=clock,
    )
    session.commit()
    return row


def find_profile(session: Session, version: ModelVersion) -> ReferenceProfile | None:
    return session.exec(
        select(ReferenceProfile).where(ReferenceProfile.version_id == version.id)
    ).first()


def ensure_profile(
    session: Session,
    *,
    settings: Settings,
    model: Model,
    version: ModelVersion,
    clock: Clock = utcnow,
) -> Profile:
    """The version's profile; computed on first use from a registered reference_data_uri."""
    row = find_profile(session, version)
    if row is None:
        uri = version.reference_data_uri
        if not uri:
            raise InvalidInput(
                f"{model.name} {version.version} has no reference data",
                hint=f"upload it: POST /api/v1/models/{model.name}/versions/{version.version}"
                "/reference, or register the version with --reference-data-uri",
            )
        table = Store(settings.data_dir).read_uri(uri)
        row = set_reference(
            session,
            settings=settings,
            model=model,
            version=version,
            table=table,
            actor=SYSTEM,
            clock=clock,
            source_uri=uri,
        )
    return Profile.from_row(row)


def load_frame(settings: Settings, profile: Profile, columns: list[str]) -> Columns:
    """The stored reference as pandas (strings as categoricals), cached by content hash:
    every check of a version reuses one copy."""
    key = f"{profile.data_uri}|{profile.hash}"
    with _cache_lock:
        frame = _cache.get(key)
        if frame is not None:
            _cache.move_to_end(key)
    if frame is None:
        frame = as_pandas(Store(settings.data_dir).read_stored(profile.data_uri))
        pa.default_memory_pool().release_unused()
        with _cache_lock:
            _cache[key] = frame
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(f"stored reference data lacks columns {missing}")
    # Series views of the cached frame: selecting a DataFrame would copy every column.
    return {c: frame[c] for c in columns}


def as_pandas(table: pa.Table) -> pd.DataFrame:
    """Column by column, strings as categoricals (what the drift tests count fastest) and
    numbers sharing Arrow's memory, so the frame costs about the data's own size."""
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = column.dictionary_encode()
        columns[name] = column.to_pandas()
    return pd.DataFrame(columns, copy=False)


def to_public(model: Model, version: ModelVersion, row: ReferenceProfile) -> ReferenceProfilePublic:
    return ReferenceProfilePublic(
        model=model.name,
        version=version.version,
        hash=row.hash,
        data_uri=row.data_uri,
        source_uri=row.source_uri,
        rows=row.rows,
        columns={
            n: ColumnProfilePublic(**{**c, "categories": _short(c.get("categories"))})
            for n, c in row.columns.items()
        },
        task=row.task,
        metrics=row.metrics,
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
    )


def _short(categories: list[object] | None) -> list[str] | None:
    return [str(c) for c in categories[:100]] if categories is not None else None


def get_public(session: Session, model: Model, version: ModelVersion) -> ReferenceProfilePublic:
    row = find_profile(session, version)
    if row is None:
        raise NotFound(
            f"{model.name} {version.version} has no reference profile yet",
            hint="set reference data first",
        )
    return to_public(model, version, row)


def past_profile(
    settings: Settings, model: Model, version: ModelVersion, digest: str, current: Profile
) -> Profile:
    """The profile an older check used, after the version's reference was replaced (stored
    reference files are content-addressed and kept, so it can be rebuilt)."""
    store = Store(settings.data_dir)
    path = f"{store.root}/reference/model={model.name}/version={version.version}/{digest}.parquet"
    table = store.read_file(path)
    kinds = {n: c.kind for n, c in current.features.items() if n in table.column_names}
    computed = profiling.compute(table, task_type=str(model.task_type), column_types=kinds)
    return replace(computed.profile, data_uri=store.uri(path), hash=digest)
