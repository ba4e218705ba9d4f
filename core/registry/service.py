"""The registry: create models, register versions with lineage, read them back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy import select as columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from modeldeck.core import db
from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.auth.service import require
from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.errors import Conflict, InvalidInput, NotFound
from modeldeck.core.registry.models import (
    Model,
    ModelCreate,
    ModelPublic,
    ModelsPublic,
    ModelVersion,
    ModelVersionCreate,
    ModelVersionPublic,
    ModelVersionsPublic,
    Stage,
)

# Read paths run statements built once (values bound) through db.run: plain rows, no ORM.
_MODEL_ID = columns(Model.id).where(Model.name == bindparam("name"))
_MODEL_PUBLIC = columns(
    Model.id,
    Model.name,
    Model.description,
    Model.owner,
    Model.team,
    Model.task_type,
    Model.created_at,
)
_MODEL_BY_NAME = _MODEL_PUBLIC.where(Model.name == bindparam("name"))
_MODEL_COUNT = columns(func.count(col(Model.id)))
_MODEL_PAGE = (
    _MODEL_PUBLIC.order_by(Model.name).offset(bindparam("offset")).limit(bindparam("limit"))
)
_TEAM_COUNT = _MODEL_COUNT.where(Model.team == bindparam("team"))
_TEAM_PAGE = (
    _MODEL_PUBLIC.where(Model.team == bindparam("team"))
    .order_by(Model.name)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_VERSION_COUNT = columns(func.count(col(ModelVersion.id))).where(
    ModelVersion.model_id == bindparam("model_id")
)
_VERSION_PAGE = (
    columns(
        ModelVersion.id,
        ModelVersion.version,
        ModelVersion.image,
        ModelVersion.artifact_uri,
        ModelVersion.reference_data_uri,
        ModelVersion.training_data_fingerprint,
        ModelVersion.git_commit,
        ModelVersion.metrics,
        ModelVersion.params,
        ModelVersion.created_by,
        ModelVersion.created_at,
        ModelVersion.stage,
    )
    .where(ModelVersion.model_id == bindparam("model_id"))
    .order_by(col(ModelVersion.created_at).desc(), col(ModelVersion.id).desc())
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)


def get_model(session: Session, name: str) -> Model:
    """The model called `name`, or NotFound naming close matches."""
    model = session.exec(select(Model).where(Model.name == name)).first()
    if model is None:
        known = session.exec(select(Model.name).order_by(Model.name).limit(200)).all()
        close = [n for n in known if name.lower() in n or n in name.lower()][:3]
        hint = f"did you mean {', '.join(close)}?" if close else "`modeldeck models list` shows all"
        raise NotFound(f"no model named {name!r}", hint=hint)
    return model


def get_model_id(session: Session, name: str) -> int:
    """The id of the model called `name` (NotFound as `get_model`), without loading the row."""
    model_id: int | None = db.run(session, _MODEL_ID, name=name).scalar()
    if model_id is None:
        get_model(session, name)  # raises NotFound with a hint
    assert model_id is not None
    return model_id


def get_version(session: Session, model: Model, version: str) -> ModelVersion:
    row = session.exec(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version
        )
    ).first()
    if row is None:
        latest = session.exec(
            select(ModelVersion.version)
            .where(ModelVersion.model_id == model.id)
            .order_by(col(ModelVersion.created_at).desc())
            .limit(3)
        ).all()
        hint = f"latest: {', '.join(latest)}" if latest else "it has no versions yet"
        raise NotFound(f"model {model.name!r} has no version {version!r}", hint=hint)
    return row


def get_model_public(session: Session, name: str) -> ModelPublic:
    row = db.run(session, _MODEL_BY_NAME, name=name).first()
    if row is None:
        get_model(session, name)  # raises NotFound with a hint
    return _model_row_public(row)


def _model_row_public(row: Any) -> ModelPublic:
    id_, name, description, owner, team, task_type, created_at = row
    return ModelPublic(
        id=id_,
        name=name,
        description=description,
        owner=owner,
        team=team,
        task_type=task_type,
        created_at=as_utc(created_at),
    )


def get_version_public(session: Session, model_name: str, version: str) -> ModelVersionPublic:
    model = get_model(session, model_name)
    return version_public(model, get_version(session, model, version))


def model_public(model: Model) -> ModelPublic:
    assert model.id is not None
    return ModelPublic(
        **model.model_dump(exclude={"created_at"}), created_at=as_utc(model.created_at)
    )


def version_public(model: Model, row: ModelVersion) -> ModelVersionPublic:
    assert row.id is not None
    data = row.model_dump(exclude={"model_id", "created_at"})
    return ModelVersionPublic(**data, model=model.name, created_at=as_utc(row.created_at))


def list_models(
    session: Session, *, team: str | None = None, limit: int = 500, offset: int = 0
) -> ModelsPublic:
    count, page = (_TEAM_COUNT, _TEAM_PAGE) if team else (_MODEL_COUNT, _MODEL_PAGE)
    total = db.run(session, count, team=team).scalar_one()
    rows = db.run(session, page, team=team, limit=limit, offset=offset).all()
    return ModelsPublic(data=[_model_row_public(r) for r in rows], count=total)


def create_model(
    session: Session, *, data: ModelCreate, actor: Actor, clock: Clock = utcnow
) -> Model:
    require(actor, Role.deployer, "create models")
    if session.exec(select(Model.id).where(Model.name == data.name)).first() is not None:
        raise Conflict(f"model {data.name!r} already exists")
    model = Model(**data.model_dump(), created_at=clock())
    session.add(model)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create won the race
        session.rollback()
        raise Conflict(f"model {data.name!r} already exists") from exc
    audit.record(
        session,
        actor=actor,
        action="model.create",
        target=f"model:{model.name}",
        after=data.model_dump(),
        clock=clock,
    )
    session.commit()
    return model


def list_versions(
    session: Session, model_name: str, *, limit: int = 200, offset: int = 0
) -> ModelVersionsPublic:
    model_id = get_model_id(session, model_name)
    total = db.run(session, _VERSION_COUNT, model_id=model_id).scalar_one()
    rows = db.run(session, _VERSION_PAGE, model_id=model_id, limit=limit, offset=offset).all()
    return ModelVersionsPublic(
        data=[
            ModelVersionPublic(
                id=r[0],
                model=model_name,
                version=r[1],
                image=r[2],
                artifact_uri=r[3],
                reference_data_uri=r[4],
                training_data_fingerprint=r[5],
                git_commit=r[6],
                metrics=r[7],
                params=r[8],
                created_by=r[9],
                created_at=as_utc(r[10]),
                stage=r[11],
            )
            for r in rows
        ],
        count=total,
    )


def register_version(
    session: Session,
    *,
    model_name: str,
    data: ModelVersionCreate,
    actor: Actor,
    create_model_if_missing: ModelCreate | None = None,
    clock: Clock = utcnow,
) -> ModelVersionPublic:
    """Register a version. With `create_model_if_missing`, an unknown model is created in the
    same transaction (as MLflow's registry does on first registration)."""
    require(actor, Role.deployer, "register versions")
    model = session.exec(select(Model).where(Model.name == model_name)).first()
    if model is None:
        if create_model_if_missing is None:
            get_model(session, model_name)  # raises NotFound with a hint
        assert create_model_if_missing is not None
        if create_model_if_missing.name != model_name:
            raise InvalidInput(
                f"model name {create_model_if_missing.name!r} does not match {model_name!r}"
            )
        model = Model(**create_model_if_missing.model_dump(), created_at=clock())
        session.add(model)
        try:
            session.flush()
        except IntegrityError as exc:  # created concurrently by someone else
            session.rollback()
            raise Conflict(
                f"model {model_name!r} was created at the same time by another request",
                hint="retry: the model exists now",
            ) from exc
        audit.record(
            session,
            actor=actor,
            action="model.create",
            target=f"model:{model.name}",
            after=create_model_if_missing.model_dump(),
            clock=clock,
        )
    exists = session.exec(
        select(ModelVersion.id).where(
            ModelVersion.model_id == model.id, ModelVersion.version == data.version
        )
    ).first()
    if exists is not None:
        session.rollback()
        raise Conflict(
            f"model {model_name!r} already has a version {data.version!r}",
            hint="versions are immutable; register a new version string",
        )
    assert model.id is not None
    row = ModelVersion(
        **data.model_dump(), model_id=model.id, created_by=actor.name, created_at=clock()
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"model {model_name!r} already has a version {data.version!r}") from exc
    audit.record(
        session,
        actor=actor,
        action="version.register",
        target=f"model:{model.name}/version:{row.version}",
        after=data.model_dump(),
        clock=clock,
    )
    session.commit()
    return version_public(model, row)


def set_stage(
    session: Session,
    *,
    model_name: str,
    version: str,
    stage: Stage,
    actor: Actor,
    clock: Clock = utcnow,
) -> ModelVersionPublic:
    """Change a version's stage label (a label only; rollouts decide what runs)."""
    require(actor, Role.deployer, "change stage labels")
    model = get_model(session, model_name)
    row = get_version(session, model, version)
    before = row.stage
    if before != stage:
        row.stage = stage
        session.add(row)
        audit.record(
            session,
            actor=actor,
            action="version.stage",
            target=f"model:{model.name}/version:{row.version}",
            before={"stage": before},
            after={"stage": stage},
            clock=clock,
        )
        session.commit()
    return version_public(model, row)
