"""The one Protocol every cluster backend implements, and the values it speaks in.

modeldeck never creates cluster objects: the platform team owns the manifests (Deployment or
InferenceService); modeldeck changes which version they serve and reads back what they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from modeldeck.core.errors import BackendUnavailable

# Annotations modeldeck writes on the objects it changes, so a human reading `kubectl describe`
# (and `reconcile`) can tell which request put a version there.
ANNOTATION_MODEL = "modeldeck.io/model"
ANNOTATION_VERSION = "modeldeck.io/version"
ANNOTATION_DEPLOYMENT = "modeldeck.io/deployment-id"
VERSION_ENV = "MODEL_VERSION"


class TargetMissing(BackendUnavailable):
    """The object modeldeck should change does not exist (deleted by hand, or a wrong target)."""


class ClusterUnreachable(BackendUnavailable):
    """No answer from the cluster's API server at all (refused, timed out, reset): every object
    on that cluster is out of reach, so a caller going through many of them can stop asking."""


@dataclass(frozen=True)
class Target:
    """Where a model is served: one object in one namespace of one cluster."""

    cluster: str
    namespace: str
    name: str
    model: str
    environment: str

    def describe(self, kind: str) -> str:
        return f"{kind} {self.namespace}/{self.name} on cluster {self.cluster}"


@dataclass(frozen=True)
class Release:
    """What to run: a registered version, and the modeldeck deployment asking for it."""

    model: str
    version: str
    image: str
    artifact_uri: str
    deployment_id: int


class Phase(StrEnum):
    progressing = "progressing"
    available = "available"
    failed = "failed"


@dataclass(frozen=True)
class RolloutStatus:
    """The cluster's view of one rollout; `message` is the cluster's own words."""

    phase: Phase
    message: str = ""


@dataclass(frozen=True)
class Running:
    """What an object serves right now, as the cluster reports it."""

    version: str | None
    image: str | None = None
    artifact_uri: str | None = None
    deployment_id: int | None = None
    ready: bool = True


def differences(running: Running, release: Release) -> list[str]:
    """How what an object serves differs from a release (empty: it serves the release).

    Compares what a hand change alters (`kubectl set image` keeps modeldeck's annotations):
    the version, and the image or artifact where both sides know one.
    """
    found = []
    if running.version != release.version:
        found.append(f"version {running.version or 'unknown'} instead of {release.version}")
    if release.image and running.image and running.image != release.image:
        found.append(f"image {running.image} instead of {release.image}")
    artifact = running.artifact_uri
    if release.artifact_uri and artifact and artifact != release.artifact_uri:
        found.append(f"artifact {artifact} instead of {release.artifact_uri}")
    return found


class ClusterBackend(Protocol):
    """Apply a version, follow its rollout, read what runs.

    Every method raises `errors.BackendUnavailable` with a readable reason when the cluster
    cannot be reached or refuses the change (`TargetMissing` when the object does not exist);
    none of them touches modeldeck's own tables except the simulated backend, whose "cluster"
    lives in the database.
    """

    def apply(self, target: Target, release: Release) -> Running | None:
        """Start serving `release`; return what ran just before (None if nothing did)."""
        ...

    def rollout_status(self, target: Target, release: Release) -> RolloutStatus:
        """How the rollout of `release` is doing; failed when the object no longer serves it
        (changed by hand during the rollout)."""
        ...

    def running(self, target: Target) -> Running | None:
        """What the object serves now; None when the object does not exist."""
        ...


def parse_deployment_id(value: str | None) -> int | None:
    """The modeldeck deployment id from an annotation; None when absent or edited by hand."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())
