"""KServe backend: a model version is the storageUri (or image) of an InferenceService.

Custom resources take JSON merge patches (the API server refuses strategic merge for them), so
container lists are patched whole, from the object just read.
"""

from __future__ import annotations

import copy
from dataclasses import replace
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
from modeldeck.core.errors import BackendUnavailable

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MERGE_PATCH = "application/merge-patch+json"
# modelStatus.transitionStatus values that mean the new model will not load without a change.
_BLOCKED = {"BlockedByFailedLoad", "InvalidSpec"}
_FAILED_REASONS = {"RevisionFailed"}

Obj = dict[str, Any]


class KServeBackend:
    """ClusterBackend over serving.kserve.io/v1beta1 InferenceServices of one cluster."""

    def __init__(self, cluster: ClusterConfig, api_client: k8s.ApiClient | None = None):
        self.cluster = cluster
        self.api = k8s.CustomObjectsApi(api_client or kubeclient.shared_client(cluster))
        self.timeout = kubeclient.timeout(cluster)

    def apply(self, target: Target, release: Release) -> Running | None:
        isvc = self._read(target)
        before = _running(isvc, target)
        patch: Obj = {
            "metadata": {
                "annotations": {
                    ANNOTATION_MODEL: release.model,
                    ANNOTATION_VERSION: release.version,
                    ANNOTATION_DEPLOYMENT: str(release.deployment_id),
                }
            },
            "spec": {"predictor": _predictor_patch(isvc, target, release)},
        }
        kubeclient.call(
            self.cluster,
            f"patching {target.describe('InferenceService')}",
            lambda: self.api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                target.namespace,
                PLURAL,
                target.name,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=self.timeout,
            ),
        )
        return before

    def rollout_status(self, target: Target, release: Release) -> RolloutStatus:
        return rollout_phase(self._read(target), release, target)

    def running(self, target: Target) -> Running | None:
        try:
            return _running(self._read(target), target)
        except kubeclient.TargetMissing:
            return None

    def _read(self, target: Target) -> Obj:
        result: Obj = kubeclient.call(
            self.cluster,
            f"reading {target.describe('InferenceService')}",
            lambda: self.api.get_namespaced_custom_object(
                GROUP, VERSION, target.namespace, PLURAL, target.name, _request_timeout=self.timeout
            ),
        )
        return result


def _predictor_patch(isvc: Obj, target: Target, release: Release) -> Obj:
    """storageUri for a model-format predictor, the image for a custom container predictor."""
    predictor = isvc.get("spec", {}).get("predictor", {})
    if "model" in predictor and release.artifact_uri:
        return {"model": {"storageUri": release.artifact_uri}}
    containers = predictor.get("containers")
    if containers and release.image:
        changed = copy.deepcopy(containers)
        chosen = _chosen(changed, target)
        chosen["image"] = release.image
        env = [e for e in chosen.get("env", []) if e.get("name") != VERSION_ENV]
        chosen["env"] = [*env, {"name": VERSION_ENV, "value": release.version}]
        return {"containers": changed}
    shape = (
        "predictor.model"
        if "model" in predictor
        else ("predictor.containers" if containers else "no known predictor")
    )
    need = "an artifact_uri" if "model" in predictor else "an image"
    raise BackendUnavailable(
        f"cannot apply {release.model} {release.version} to "
        f"{target.describe('InferenceService')}: it uses {shape}, which needs {need}",
        hint="register the version with --artifact-uri (model predictors) or --image",
    )


def _conditions(isvc: Obj) -> dict[str, Obj]:
    return {c.get("type", ""): c for c in isvc.get("status", {}).get("conditions", []) or []}


def rollout_phase(isvc: Obj, release: Release, target: Target) -> RolloutStatus:
    """Ready condition of the current generation; failed loads of it fail at once.

    The generation comes first: until KServe observed the new spec, `modelStatus` still
    describes the previous one (a BlockedByFailedLoad left by an earlier bad version).
    """
    meta = isvc.get("metadata", {})
    name = meta.get("name", "?")
    found = parse_deployment_id((meta.get("annotations") or {}).get(ANNOTATION_DEPLOYMENT))
    if found != release.deployment_id:
        return RolloutStatus(
            Phase.failed, f"InferenceService {name} was changed by someone else during the rollout"
        )
    changed = differences(_running(isvc, target), _comparable(isvc, release))
    if changed:
        return RolloutStatus(
            Phase.failed,
            f"InferenceService {name} was changed by someone else during the rollout "
            f"(it now runs {', '.join(changed)})",
        )
    status = isvc.get("status") or {}
    generation = meta.get("generation") or 0
    observed = status.get("observedGeneration")
    if generation and (observed is None or observed < generation):
        return RolloutStatus(Phase.progressing, "waiting for KServe to observe the new spec")
    model_status = status.get("modelStatus") or {}
    if model_status.get("transitionStatus") in _BLOCKED:
        info = model_status.get("lastFailureInfo") or {}
        return RolloutStatus(
            Phase.failed,
            f"{model_status['transitionStatus']}: "
            f"{info.get('reason', '')} {info.get('message', '')}".strip(),
        )
    conditions = _conditions(isvc)
    for kind in ("PredictorReady", "Ready"):
        cond = conditions.get(kind, {})
        if cond.get("status") == "False" and cond.get("reason") in _FAILED_REASONS:
            return RolloutStatus(
                Phase.failed, f"{kind}: {cond.get('reason')}: {cond.get('message', '')}"
            )
    ready = conditions.get("Ready", {})
    if ready.get("status") == "True":
        return RolloutStatus(Phase.available, "InferenceService is Ready")
    return RolloutStatus(
        Phase.progressing,
        f"Ready={ready.get('status', 'Unknown')}"
        + (f" ({ready.get('reason')}: {ready.get('message', '')})" if ready.get("reason") else ""),
    )


def _comparable(isvc: Obj, release: Release) -> Release:
    """The release as the predictor carries it: a model predictor has no MODEL_VERSION env
    (its version is the annotation) and only a storageUri; a container one only an image."""
    predictor = isvc.get("spec", {}).get("predictor", {})
    if "model" in predictor:
        return replace(release, image="")
    return replace(release, artifact_uri="")


def _chosen(containers: list[Obj], target: Target) -> Obj:
    """The container named like the model or the object, else the first."""
    return next(
        (c for c in containers if c.get("name") in (target.model, target.name)), containers[0]
    )


def _running(isvc: Obj, target: Target) -> Running:
    meta = isvc.get("metadata", {})
    annotations = meta.get("annotations") or {}
    predictor = isvc.get("spec", {}).get("predictor", {})
    containers = predictor.get("containers") or []
    container = _chosen(containers, target) if containers else {}
    env = {e.get("name"): e.get("value") for e in (container.get("env") or [])}
    return Running(
        version=env.get(VERSION_ENV) or annotations.get(ANNOTATION_VERSION),
        image=container.get("image"),
        artifact_uri=(predictor.get("model") or {}).get("storageUri"),
        deployment_id=parse_deployment_id(annotations.get(ANNOTATION_DEPLOYMENT)),
        ready=_conditions(isvc).get("Ready", {}).get("status") == "True",
    )
