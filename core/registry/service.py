"""The registry: create models, register versions with lineage, read them back."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

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


def get_model(session: Session, name: str) -> Model:
    """The model called `name`, or NotFound naming close matches."""
    model = session.exec(select(Model).where(Model.name == name)).first()
    if model is None:
        known = session.exec(select(Model.name).order_by(Model.name).limit(200)).all()
        close = [n for n in known if name.lower() in n or n in name.lower()][:3]
        hint = f"did you mean {', '.join(close)}?" if close else "`modeldeck models list` shows all"
        raise NotFound(f"no model named {name!r}", hint=hint)
    return model


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
    query = select(Model)
    if team:
        query = query.where(Model.team == team)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(Model.name).offset(offset).limit(limit)).all()
    return ModelsPublic(data=[model_public(m) for m in rows], count=total)


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
    model = get_model(session, model_name)
    query = select(ModelVersion).where(ModelVersion.model_id == model.id)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(ModelVersion.created_at).desc(), col(ModelVersion.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return ModelVersionsPublic(data=[version_public(model, r) for r in rows], count=total)


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
