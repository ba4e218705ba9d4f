"""Kubernetes objects for the fake API server: patch semantics and derived status.

Kept apart from the HTTP server (fake_k8s.py) so each stays readable: this file is what the
API server does to objects, that one is how it talks.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

Obj = dict[str, Any]
# Strategic merge: lists merged by these keys instead of replaced (as in the k8s API types).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


def strategic_merge(target: Obj, patch: Obj) -> Obj:
    """Apply a strategic-merge patch (the subset Deployments need: maps, keyed lists, null)."""
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            strategic_merge(target[key], value)
        elif isinstance(value, list) and key in MERGE_KEYS and isinstance(target.get(key), list):
            merge_key = MERGE_KEYS[key]
            for item in value:
                match = next(
                    (
                        t
                        for t in target[key]
                        if isinstance(item, dict) and t.get(merge_key) == item.get(merge_key)
                    ),
                    None,
                )
                if match is None:
                    target[key].append(copy.deepcopy(item))
                else:
                    strategic_merge(match, item)
        else:
            target[key] = copy.deepcopy(value)
    return target


def merge_patch(target: Obj, patch: Obj) -> Obj:
    """RFC 7386 JSON merge patch: maps merge, lists and scalars replace, null deletes."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def deployment(
    namespace: str,
    name: str,
    *,
    image: str,
    replicas: int = 2,
    containers: list[Obj] | None = None,
    version: str | None = None,
) -> Obj:
    """An apps/v1 Deployment as the API server stores it (status is derived on read)."""
    main: Obj = {"name": name, "image": image}
    if version:
        main["env"] = [{"name": "MODEL_VERSION", "value": version}]
    labels = {"app": name}
    body: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid(namespace, name),
            "generation": 1,
            "resourceVersion": "1",
            "labels": dict(labels),
            "annotations": {},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {}},
                "spec": {"containers": containers or [main]},
            },
        },
    }
    return body


def inference_service(
    namespace: str, name: str, *, storage_uri: str | None = None, image: str | None = None
) -> Obj:
    """A v1beta1 InferenceService: model predictor with storageUri, else a container."""
    predictor: Obj = (
        {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": storage_uri}}
        if storage_uri is not None
        else {"containers": [{"name": "kserve-container", "image": image}]}
    )
    body: Obj = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid(namespace, name),
            "generation": 1,
            "resourceVersion": "1",
            "annotations": {},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"predictor": predictor},
    }
    return body


def containers(obj: Obj) -> list[Obj]:
    spec = obj.get("spec", {})
    if "template" in spec:
        return list(spec["template"].get("spec", {}).get("containers", []))
    return list(spec.get("predictor", {}).get("containers", []))


def uid(namespace: str, name: str) -> str:
    digest = hashlib.sha1(f"{namespace}/{name}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def status(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def internal_error(code: int) -> Obj:
    """What an API server answers when etcd is slow (the write may or may not have landed)."""
    return status(code, "InternalError", "Internal error occurred: etcdserver: request timed out")


def deployment_status(body: Obj, phase: str) -> Obj:
    want = body["spec"].get("replicas", 1)
    generation = body["metadata"]["generation"]
    template_hash = hashlib.sha1(
        json.dumps(body["spec"]["template"], sort_keys=True).encode()
    ).hexdigest()[:10]
    rs = f"{body['metadata']['name']}-{template_hash}"
    progressing = {
        "type": "Progressing",
        "status": "True",
        "reason": "ReplicaSetUpdated",
        "message": f'ReplicaSet "{rs}" is progressing.',
    }
    available = {
        "type": "Available",
        "status": "True",
        "reason": "MinimumReplicasAvailable",
        "message": "Deployment has minimum availability.",
    }
    if phase == "done":
        progressing |= {
            "reason": "NewReplicaSetAvailable",
            "message": f'ReplicaSet "{rs}" has successfully progressed.',
        }
        return {
            "observedGeneration": generation,
            "replicas": want,
            "updatedReplicas": want,
            "readyReplicas": want,
            "availableReplicas": want,
            "conditions": [available, progressing],
        }
    status: Obj = {
        "observedGeneration": generation,
        "replicas": want + 1,
        "updatedReplicas": 1,
        "readyReplicas": want,
        "availableReplicas": want,
        "unavailableReplicas": 1,
        "conditions": [available, progressing],
    }
    if phase == "lagging":
        status["observedGeneration"] = generation - 1
    if phase == "deadline":
        progressing |= {
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": f'ReplicaSet "{rs}" has timed out progressing.',
        }
    return status


def isvc_status(body: Obj, phase: str) -> Obj:
    generation = body["metadata"]["generation"]
    name = body["metadata"]["name"]
    revision = f"{name}-predictor-{generation:05d}"
    if phase == "done":
        ready = {"type": "Ready", "status": "True"}
        return {
            "observedGeneration": generation,
            "url": f"http://{name}.example.com",
            "conditions": [{"type": "PredictorReady", "status": "True"}, ready],
            "modelStatus": {
                "transitionStatus": "UpToDate",
                "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
            },
        }
    waiting = {
        "type": "Ready",
        "status": "False",
        "reason": "RevisionMissing",
        "message": f'Configuration "{name}-predictor" is waiting for a Revision to become ready.',
    }
    status: Obj = {
        "observedGeneration": generation if phase != "lagging" else generation - 1,
        "conditions": [{**waiting, "type": "PredictorReady"}, waiting],
        "modelStatus": {
            "transitionStatus": "InProgress",
            "states": {"activeModelState": "Loaded", "targetModelState": "Pending"},
        },
    }
    if phase == "deadline":
        status["modelStatus"] = {
            "transitionStatus": "BlockedByFailedLoad",
            "states": {"activeModelState": "Loaded", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {
                "reason": "ModelLoadFailed",
                "message": f'Revision "{revision}" failed: model file not found at storageUri',
            },
        }
    return status
