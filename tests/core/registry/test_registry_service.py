"""Registry service on SQLite and PostgreSQL: models, versions with lineage, stage labels."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import FixedClock, as_utc
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import (
    ModelCreate,
    ModelVersion,
    ModelVersionCreate,
    Stage,
    TaskType,
)
from tests.utils.rows import snapshot


@pytest.fixture
def session(any_engine: Engine, settings: Settings) -> Iterator[Session]:
    """A session on SQLite or PostgreSQL with the test environments synced."""
    with Session(any_engine, expire_on_commit=False) as s:
        environments.sync(s, settings)
        yield s


def events(session: Session, action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(session.exec(query).all())


def lineage(version: str = "1.4.0") -> ModelVersionCreate:
    return ModelVersionCreate(
        version=version,
        image=f"ghcr.io/acme/fraud:{version}",
        artifact_uri=f"s3://models/fraud/{version}/model.pkl",
        reference_data_uri="s3://data/fraud/reference.parquet",
        training_data_fingerprint="sha256:abc123",
        git_commit="3f2c9e1",
        metrics={"auc": 0.93, "f1": 0.84},
        params={"max_depth": 8, "features": ["amount", "country"]},
    )


def test_create_model_writes_it_and_its_audit_event(
    session: Session, deployer: Actor, clock: FixedClock
) -> None:
    model = registry.create_model(
        session,
        data=ModelCreate(name="fraud", team="risk", owner="ana", task_type=TaskType.regression),
        actor=deployer,
        clock=clock,
    )
    assert model.id is not None and as_utc(model.created_at) == clock()
    (event,) = events(session, "model.create")
    assert (event.actor, event.via, event.target) == ("carol", "cli", "model:fraud")
    assert event.after is not None and event.after["team"] == "risk"
    public = registry.get_model(session, "fraud")
    assert public.task_type == TaskType.regression


def test_duplicate_model_is_a_conflict_and_changes_nothing(
    any_engine: Engine, session: Session, deployer: Actor
) -> None:
    registry.create_model(session, data=ModelCreate(name="fraud"), actor=deployer)
    before = snapshot(any_engine)
    with pytest.raises(Conflict, match="model 'fraud' already exists"):
        registry.create_model(session, data=ModelCreate(name="fraud"), actor=deployer)
    assert snapshot(any_engine) == before


@pytest.mark.parametrize("role", [Role.viewer, None])
def test_viewers_and_unknown_people_cannot_create(
    any_engine: Engine, session: Session, role: Role | None
) -> None:
    before = snapshot(any_engine)
    actor = Actor(name="eve", role=role)
    with pytest.raises(Forbidden) as info:
        registry.create_model(session, data=ModelCreate(name="fraud"), actor=actor)
    with pytest.raises(Forbidden):
        registry.register_version(
            session,
            model_name="fraud",
            data=lineage(),
            actor=actor,
            create_model_if_missing=ModelCreate(name="fraud"),
        )
    assert snapshot(any_engine) == before
    if role is None:
        assert "has no modeldeck role" in info.value.message and info.value.hint
    else:
        assert info.value.message == "create models needs the deployer role; eve is viewer"


def test_register_version_keeps_its_lineage(
    session: Session, deployer: Actor, clock: FixedClock
) -> None:
    registry.create_model(session, data=ModelCreate(name="fraud"), actor=deployer)
    public = registry.register_version(
        session, model_name="fraud", data=lineage(), actor=deployer, clock=clock
    )
    again = registry.version_public(
        registry.get_model(session, "fraud"),
        registry.get_version(session, registry.get_model(session, "fraud"), "1.4.0"),
    )
    assert public == again
    assert again.model == "fraud" and again.created_by == "carol"
    assert again.metrics == {"auc": 0.93, "f1": 0.84}
    assert again.params == {"max_depth": 8, "features": ["amount", "country"]}
    assert again.training_data_fingerprint == "sha256:abc123"
    assert again.git_commit == "3f2c9e1" and again.created_at == clock()
    (event,) = events(session, "version.register")
    assert event.target == "model:fraud/version:1.4.0"


def test_first_registration_creates_the_model_in_the_same_transaction(
    session: Session, deployer: Actor
) -> None:
    registry.register_version(
        session,
        model_name="churn",
        data=lineage("2.0.0"),
        actor=deployer,
        create_model_if_missing=ModelCreate(name="churn", team="growth"),
    )
    assert registry.get_model(session, "churn").team == "growth"
    assert [e.action for e in events(session)][-2:] == ["model.create", "version.register"]


def test_mismatched_new_model_name_is_refused(
    any_engine: Engine, session: Session, deployer: Actor
) -> None:
    before = snapshot(any_engine)
    with pytest.raises(InvalidInput, match="does not match"):
        registry.register_version(
            session,
            model_name="churn",
            data=lineage(),
            actor=deployer,
            create_model_if_missing=ModelCreate(name="fraud"),
        )
    assert snapshot(any_engine) == before


def test_duplicate_version_is_a_conflict_and_changes_nothing(
    any_engine: Engine, session: Session, deployer: Actor
) -> None:
    registry.register_version(
        session,
        model_name="fraud",
        data=lineage(),
        actor=deployer,
        create_model_if_missing=ModelCreate(name="fraud"),
    )
    before = snapshot(any_engine)
    with pytest.raises(Conflict, match="already has a version '1.4.0'") as info:
        registry.register_version(
            session,
            model_name="fraud",
            data=lineage(),
            actor=deployer,
            create_model_if_missing=ModelCreate(name="fraud"),
        )
    assert "immutable" in str(info.value.hint)
    assert snapshot(any_engine) == before


def test_the_database_itself_refuses_a_duplicate_version(session: Session, deployer: Actor) -> None:
    """The unique constraint holds even for code that skips the service's check."""
    registry.register_version(
        session,
        model_name="fraud",
        data=lineage(),
        actor=deployer,
        create_model_if_missing=ModelCreate(name="fraud"),
    )
    model = registry.get_model(session, "fraud")
    assert model.id is not None
    session.add(ModelVersion(model_id=model.id, version="1.4.0"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


def test_unknown_model_and_version_are_not_found_with_a_hint(
    any_engine: Engine, session: Session, deployer: Actor
) -> None:
    registry.register_version(
        session,
        model_name="fraud-detector",
        data=lineage(),
        actor=deployer,
        create_model_if_missing=ModelCreate(name="fraud-detector"),
    )
    before = snapshot(any_engine)
    with pytest.raises(NotFound, match="no model named 'fraud'") as info:
        registry.register_version(
            session, model_name="fraud", data=lineage("9.9.9"), actor=deployer
        )
    assert info.value.hint == "did you mean fraud-detector?"
    with pytest.raises(NotFound) as info:
        registry.get_model(session, "churn")
    assert info.value.hint == "`modeldeck models list` shows all"
    model = registry.get_model(session, "fraud-detector")
    with pytest.raises(NotFound, match="has no version '2.0.0'") as info:
        registry.get_version(session, model, "2.0.0")
    assert info.value.hint == "latest: 1.4.0"
    with pytest.raises(NotFound):
        registry.list_versions(session, "nope")
    assert snapshot(any_engine) == before


def test_lists_are_ordered_filtered_and_paged(
    session: Session, deployer: Actor, clock: FixedClock
) -> None:
    for name, team in (("b-model", "risk"), ("a-model", "risk"), ("c-model", "growth")):
        registry.create_model(session, data=ModelCreate(name=name, team=team), actor=deployer)
    models = registry.list_models(session)
    assert [m.name for m in models.data] == ["a-model", "b-model", "c-model"]
    assert registry.list_models(session, team="risk").count == 2
    page = registry.list_models(session, limit=1, offset=1)
    assert [m.name for m in page.data] == ["b-model"] and page.count == 3
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        registry.register_version(
            session, model_name="a-model", data=lineage(version), actor=deployer, clock=clock
        )
        clock.advance(minutes=5)
    versions = registry.list_versions(session, "a-model", limit=2)
    assert [v.version for v in versions.data] == ["1.2.0", "1.1.0"] and versions.count == 3
    assert versions.data[0].created_at - versions.data[1].created_at == timedelta(minutes=5)


def test_stage_label_changes_are_audited_once(session: Session, deployer: Actor) -> None:
    registry.register_version(
        session,
        model_name="fraud",
        data=lineage(),
        actor=deployer,
        create_model_if_missing=ModelCreate(name="fraud"),
    )
    result = registry.set_stage(
        session, model_name="fraud", version="1.4.0", stage=Stage.production, actor=deployer
    )
    assert result.stage == Stage.production
    registry.set_stage(
        session, model_name="fraud", version="1.4.0", stage=Stage.production, actor=deployer
    )
    (event,) = events(session, "version.stage")
    assert event.before == {"stage": "none"} and event.after == {"stage": "production"}


def test_free_text_with_nul_is_refused_before_the_database() -> None:
    """PostgreSQL refuses NUL in text; the schema catches it first, naming the field."""
    with pytest.raises(ValueError, match="control characters"):
        ModelCreate(name="fraud", description="bad\x00text")
    with pytest.raises(ValueError, match="param 'x' contains a NUL"):
        ModelVersionCreate(version="1.0", params={"x": "a\x00b"})
    with pytest.raises(ValueError, match="param 'x'.*finite"):
        ModelVersionCreate(version="1.0", params={"x": [1.0, float("nan")]})
    with pytest.raises(ValueError, match="metric 'auc' must be a finite number"):
        ModelVersionCreate(version="1.0", metrics={"auc": float("inf")})


@pytest.mark.parametrize(
    ("image", "artifact_uri"), [("", ""), ("  ", ""), ("", " \u3000"), ("  ", "  ")]
)
def test_a_version_needs_an_image_or_an_artifact(image: str, artifact_uri: str) -> None:
    """Else a promote has nothing to deploy: Kubernetes would keep running the old image."""
    with pytest.raises(ValueError, match="a version needs something to deploy"):
        ModelVersionCreate(version="1.0", image=image, artifact_uri=artifact_uri)
    assert ModelVersionCreate(version="1.0", image="ghcr.io/acme/fraud:1.0").artifact_uri == ""
    assert ModelVersionCreate(version="1.0", artifact_uri="s3://m/fraud/1.0").image == ""
