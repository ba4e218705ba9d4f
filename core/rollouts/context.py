"""The rows a deployment refers to (model, environment, version), loaded together.

Rollout moves, checks, alert rules and the label catch-up all start from a deployment and
need its names; this module depends on the models only, so any domain can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from modeldeck.core.environments.models import Environment
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts.models import Deployment


@dataclass
class Context:
    """A deployment with the rows it refers to."""

    deployment: Deployment
    model: Model
    env: Environment
    version: ModelVersion

    @property
    def target_name(self) -> str:
        return f"model:{self.model.name}/env:{self.env.name}/deployment:{self.deployment.id}"

    @property
    def subject(self) -> str:
        """How alerts and checks name it: "fraud-detector 1.4.0 in production"."""
        return f"{self.model.name} {self.version.version} in {self.env.name}"


def load(session: Session, deployment: Deployment) -> Context:
    model = session.get(Model, deployment.model_id)
    env = session.get(Environment, deployment.environment_id)
    version = session.get(ModelVersion, deployment.version_id)
    assert model is not None and env is not None and version is not None
    return Context(deployment, model, env, version)
