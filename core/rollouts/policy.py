"""The rules a rollout request must pass, and the history lookups they need.

Kept apart from the state changes so each rule reads on its own and is tested by the request
that breaks it.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, update
from sqlmodel import Session, col, select

from modeldeck.core.alerts import service as alerts
from modeldeck.core.auth.models import Actor
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import Conflict, Forbidden, InvalidInput
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts.models import IN_FLIGHT, Deployment, DeploymentState

MAX_REASON = 2000


def environment(session: Session, settings: Settings, name: str) -> Environment:
    """The environment called `name` or one of its aliases (`prod`), else NotFound."""
    return environments.get(session, environments.resolve_name(settings, name))


def clean_text(value: str, what: str) -> str:
    value = value.strip()
    if len(value) > MAX_REASON:
        raise InvalidInput(f"{what} is {len(value)} characters; at most {MAX_REASON}")
    return value


def clean_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 200 or not key.isprintable():
        raise InvalidInput("idempotency_key must be 1-200 printable characters")
    return key


def lock_model(session: Session, model_id: int) -> None:
    """Serialise rollout requests of one model until commit.

    A no-op UPDATE takes a row lock on PostgreSQL and the write lock on SQLite, so the checks
    that follow (in flight? already active?) see every request committed before ours; the
    partial unique indexes stay the last line of defence.
    """
    session.execute(update(Model).where(col(Model.id) == model_id).values(id=Model.id))


def check_channel(
    settings: Settings, env: Environment, actor: Actor, slack_channel: str | None
) -> None:
    """Environments bound to Slack channels refuse changes asked from anywhere else in Slack."""
    if actor.via != "slack":
        return
    allowed: list[str] = next(
        (e.slack_channels for e in settings.environments if e.name == env.name), []
    )
    if allowed and slack_channel not in allowed:
        raise Forbidden(
            f"{env.name} can only be changed from its bound Slack channels",
            hint="use " + ", ".join(f"<#{c}>" for c in allowed),
        )


def in_flight(session: Session, model_id: int, env_id: int) -> Deployment | None:
    return session.exec(
        select(Deployment).where(
            Deployment.model_id == model_id,
            Deployment.environment_id == env_id,
            col(Deployment.state).in_(IN_FLIGHT),
        )
    ).first()


def active(session: Session, model_id: int, env_id: int) -> Deployment | None:
    return session.exec(
        select(Deployment).where(
            Deployment.model_id == model_id,
            Deployment.environment_id == env_id,
            Deployment.state == DeploymentState.active,
        )
    ).first()


def refuse_in_flight(
    session: Session, model: Model, env: Environment, *, flying: Deployment | None = None
) -> None:
    """Conflict while another request of this model in this environment is under way."""
    assert model.id is not None and env.id is not None
    flying = flying or in_flight(session, model.id, env.id)
    if flying is not None:
        version = session.get(ModelVersion, flying.version_id)
        raise Conflict(
            f"{model.name} already has a rollout in flight in {env.name}: deployment "
            f"#{flying.id} ({version.version if version else '?'}, {flying.state})",
            hint="wait for it to finish"
            + (
                f", or reject it with `modeldeck reject {flying.id}`"
                if flying.state == DeploymentState.awaiting_approval
                else ""
            ),
        )


def refuse_paused(session: Session, model: Model, env: Environment) -> None:
    """A monitor at trust level pause/rollback holds promotions while its alert is open.
    Rollbacks stay allowed: they are the remedy."""
    assert model.id is not None and env.id is not None
    why = alerts.promotions_paused(session, model_id=model.id, environment_id=env.id)
    if why:
        raise Conflict(why)


def was_active(session: Session, model_id: int, env_id: int, version_id: int) -> bool:
    """True if the version ever became active in the environment (now or in the past)."""
    return _activated(session, model_id, env_id, version_id)


def ran_well(session: Session, model_id: int, env_id: int, version_id: int) -> bool:
    """True if the version is active in the environment, or was and was replaced by a newer
    promotion: an activation that a rollback ended does not count."""
    return _activated(
        session,
        model_id,
        env_id,
        version_id,
        col(Deployment.state).in_([DeploymentState.active, DeploymentState.superseded]),
    )


def _activated(
    session: Session, model_id: int, env_id: int, version_id: int, *also: ColumnElement[bool]
) -> bool:
    """Whether a deployment of the version became active in the environment (and meets `also`)."""
    found = session.exec(
        select(Deployment.id).where(
            Deployment.model_id == model_id,
            Deployment.environment_id == env_id,
            Deployment.version_id == version_id,
            col(Deployment.activated_at).is_not(None),
            *also,
        )
    ).first()
    return found is not None


def check_previous(session: Session, env: Environment, model: Model, version: ModelVersion) -> None:
    """`requires_previous`: a version reaches this environment only after running in that one
    without being rolled back there."""
    if not env.requires_previous:
        return
    before = session.exec(
        select(Environment).where(Environment.name == env.requires_previous)
    ).first()
    assert model.id is not None and version.id is not None
    if before is not None and before.id is not None:
        if ran_well(session, model.id, before.id, version.id):
            return
        if was_active(session, model.id, before.id, version.id):
            raise Conflict(
                f"{model.name} {version.version} cannot go to {env.name}: it was rolled back "
                f"in {env.requires_previous}",
                hint=f"promote a version that runs well in {env.requires_previous}",
            )
    raise Conflict(
        f"{model.name} {version.version} cannot go to {env.name} yet: it has not been "
        f"active in {env.requires_previous}",
        hint=f"modeldeck promote {model.name} {version.version} --to {env.requires_previous}",
    )


def previous_good(session: Session, current: Deployment) -> Deployment | None:
    """The deployment of the last version that ran here before `current` and was not rolled
    back: what "roll back" without a version means."""
    return session.exec(
        select(Deployment)
        .where(
            Deployment.model_id == current.model_id,
            Deployment.environment_id == current.environment_id,
            Deployment.version_id != current.version_id,
            col(Deployment.activated_at).is_not(None),
            Deployment.state != DeploymentState.rolled_back,
            col(Deployment.id) < (current.id or 0),
        )
        .order_by(col(Deployment.activated_at).desc(), col(Deployment.id).desc())
    ).first()
