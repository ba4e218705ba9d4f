"""Pick the backend of an environment's cluster from the configuration."""

from __future__ import annotations

from sqlmodel import Session

from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.clusters.backend import ClusterBackend, Target
from modeldeck.core.config import BackendKind, ClusterConfig, Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.errors import BackendUnavailable


def cluster_config(settings: Settings, name: str) -> ClusterConfig:
    for cluster in settings.clusters:
        if cluster.name == name:
            return cluster
    raise BackendUnavailable(
        f"cluster {name!r} is not in the configuration",
        hint="add it under clusters: in modeldeck.yaml",
    )


def backend_for(
    settings: Settings, cluster_name: str, *, session: Session, clock: Clock = utcnow
) -> ClusterBackend:
    """The backend that talks to `cluster_name`. Kubernetes clients connect lazily, so this
    fails only for a broken kubeconfig, never for an unreachable API server."""
    cluster = cluster_config(settings, cluster_name)
    if cluster.backend == BackendKind.kubernetes:
        from modeldeck.core.clusters.k8s import KubernetesBackend

        return KubernetesBackend(cluster)
    if cluster.backend == BackendKind.kserve:
        from modeldeck.core.clusters.kserve import KServeBackend

        return KServeBackend(cluster)
    from modeldeck.core.clusters.simulated import SimulatedBackend

    return SimulatedBackend(cluster, session=session, clock=clock)


def target_of(env: Environment, model: str) -> Target:
    """Where `model` is served in `env`."""
    return Target(
        cluster=env.cluster,
        namespace=env.namespace,
        name=env.target_name(model),
        model=model,
        environment=env.name,
    )
