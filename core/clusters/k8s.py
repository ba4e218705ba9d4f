"""Kubernetes backend: a model version is the image + MODEL_VERSION of an apps/v1 Deployment.

`apply` sends one strategic-merge patch (container image, MODEL_VERSION, modeldeck.io/*
annotations and pod labels); `rollout_status` follows the same rules as
`kubectl rollout status` (observedGeneration, updated/available replicas,
ProgressDeadlineExceeded) and reports a failure in the cluster's own words.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client as k8s

from modeldeck.core.clusters import kubeclient
from modeldeck.core.clusters.backend import (
    ANNOTATION_DEPLOYMENT,
    ANNOTATION_MODEL,
    ANNOTATION_VERSION,
    VERSION_ENV,
    Phase,
    Release,
    RolloutStatus,
    Running,
    Target,
    differences,
    parse_deployment_id,
)
from modeldeck.core.config import ClusterConfig

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
# Names the container to change when a pod has several (sidecars); else the one named like
# the model or the Deployment, else the first.
ANNOTATION_CONTAINER = "modeldeck.io/container"
LABEL_MODEL = "modeldeck.io/model"
LABEL_VERSION = "modeldeck.io/version"


def label_value(value: str) -> str:
    """A Kubernetes label value (<= 63 of [A-Za-z0-9._-]); versions may contain '+'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", value)[:63]
    return cleaned.strip("._-") or "unknown"


class KubernetesBackend:
    """ClusterBackend over apps/v1 Deployments of one cluster (one kubeconfig context)."""

    def __init__(self, cluster: ClusterConfig, api_client: k8s.ApiClient | None = None):
        self.cluster = cluster
        self.api = k8s.AppsV1Api(api_client or kubeclient.shared_client(cluster))
        self.timeout = kubeclient.timeout(cluster)

    def apply(self, target: Target, release: Release) -> Running | None:
        deployment = self._read(target)
        before = _running(deployment, target)
        annotations = {
            ANNOTATION_MODEL: release.model,
            ANNOTATION_VERSION: release.version,
            ANNOTATION_DEPLOYMENT: str(release.deployment_id),
        }
        container: dict[str, Any] = {
            "name": _container(deployment, target).name,
            "env": [{"name": VERSION_ENV, "value": release.version}],
        }
        if release.image:
            container["image"] = release.image
        patch = {
            "metadata": {"annotations": annotations},
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": annotations,
                        "labels": {
                            LABEL_MODEL: label_value(release.model),
                            LABEL_VERSION: label_value(release.version),
                        },
                    },
                    "spec": {"containers": [container]},
                }
            },
        }
        kubeclient.call(
            self.cluster,
            f"patching {target.describe('Deployment')}",
            lambda: self.api.patch_namespaced_deployment(
                target.name,
                target.namespace,
                patch,
                _content_type=STRATEGIC_MERGE,
                _request_timeout=self.timeout,
            ),
        )
        return before

    def rollout_status(self, target: Target, release: Release) -> RolloutStatus:
        return rollout_phase(self._read(target), release, target)

    def running(self, target: Target) -> Running | None:
        try:
            deployment = self._read(target)
        except kubeclient.TargetMissing:
            return None
        return _running(deployment, target)

    def _read(self, target: Target) -> k8s.V1Deployment:
        return kubeclient.call(
            self.cluster,
            f"reading {target.describe('Deployment')}",
            lambda: self.api.read_namespaced_deployment(
                target.name, target.namespace, _request_timeout=self.timeout
            ),
        )


def rollout_phase(deployment: k8s.V1Deployment, release: Release, target: Target) -> RolloutStatus:
    """kubectl's rollout-status rules, plus: the pod template must still be ours, and still
    run our image and version (`kubectl set image` keeps our annotations)."""
    name = deployment.metadata.name if deployment.metadata else "?"
    template_annotations = _template_annotations(deployment)
    found = parse_deployment_id(template_annotations.get(ANNOTATION_DEPLOYMENT))
    if found != release.deployment_id:
        return RolloutStatus(
            Phase.failed,
            f"Deployment {name} was changed by someone else during "
            f"the rollout (its pod template now belongs to "
            f"{'modeldeck deployment #' + str(found) if found else 'no modeldeck deployment'})",
        )
    changed = differences(_running(deployment, target), release)
    if changed:
        return RolloutStatus(
            Phase.failed,
            f"Deployment {name} was changed by someone else during the rollout "
            f"(it now runs {', '.join(changed)})",
        )
    status = deployment.status or k8s.V1DeploymentStatus()
    generation = (deployment.metadata.generation if deployment.metadata else None) or 0
    if status.observed_generation is None or generation > status.observed_generation:
        return RolloutStatus(
            Phase.progressing, "waiting for the Deployment controller to observe the new spec"
        )
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            extra = _replica_failure(status)
            return RolloutStatus(
                Phase.failed,
                f"ProgressDeadlineExceeded: {condition.message}" + (f"; {extra}" if extra else ""),
            )
    wanted = (
        deployment.spec.replicas if deployment.spec and deployment.spec.replicas is not None else 1
    )
    updated = status.updated_replicas or 0
    if updated < wanted:
        return RolloutStatus(
            Phase.progressing, f"{updated} of {wanted} new replicas have been updated"
        )
    if (status.replicas or 0) > updated:
        return RolloutStatus(
            Phase.progressing,
            f"{(status.replicas or 0) - updated} old replicas are pending termination",
        )
    if (status.available_replicas or 0) < updated:
        return RolloutStatus(
            Phase.progressing,
            f"{status.available_replicas or 0} of {updated} updated replicas are available",
        )
    return RolloutStatus(Phase.available, f"{updated} of {wanted} replicas updated and available")


def _replica_failure(status: k8s.V1DeploymentStatus) -> str:
    for condition in status.conditions or []:
        if condition.type == "ReplicaFailure" and condition.status == "True":
            return f"{condition.reason}: {condition.message}"
    return ""


def _template_annotations(deployment: k8s.V1Deployment) -> dict[str, str]:
    template = deployment.spec.template if deployment.spec else None
    if template is None or template.metadata is None:
        return {}
    return dict(template.metadata.annotations or {})


def _containers(deployment: k8s.V1Deployment) -> list[k8s.V1Container]:
    template = deployment.spec.template if deployment.spec else None
    if template is None or template.spec is None:
        return []
    return list(template.spec.containers or [])


def _container(deployment: k8s.V1Deployment, target: Target) -> k8s.V1Container:
    containers = _containers(deployment)
    if not containers:
        raise kubeclient.BackendUnavailable(
            f"{target.describe('Deployment')} has no containers to update"
        )
    wanted = (
        (deployment.metadata.annotations or {}).get(ANNOTATION_CONTAINER)
        if deployment.metadata
        else None
    )
    for name in (wanted, target.model, target.name):
        for container in containers:
            if name and container.name == name:
                return container
    if wanted:
        raise kubeclient.BackendUnavailable(
            f"{target.describe('Deployment')} has no container {wanted!r} "
            f"(named by its {ANNOTATION_CONTAINER} annotation)"
        )
    return containers[0]


def _running(deployment: k8s.V1Deployment, target: Target) -> Running:
    annotations = _template_annotations(deployment)
    try:
        container: k8s.V1Container | None = _container(deployment, target)
    except kubeclient.BackendUnavailable:
        container = None
    env = {e.name: e.value for e in (container.env or [])} if container else {}
    status = deployment.status or k8s.V1DeploymentStatus()
    wanted = (
        deployment.spec.replicas if deployment.spec and deployment.spec.replicas is not None else 1
    )
    return Running(
        version=env.get(VERSION_ENV) or annotations.get(ANNOTATION_VERSION),
        image=container.image if container else None,
        deployment_id=parse_deployment_id(annotations.get(ANNOTATION_DEPLOYMENT)),
        ready=(status.available_replicas or 0) >= wanted,
    )
