"""A small kustomize-compatible renderer for the features deploy/kustomize uses.

Supports: resources (files and directories with a kustomization.yaml), namespace, labels
(pairs, includeSelectors false), images, replicas and strategic-merge patches matched by kind
and name (maps merged deeply, lists of named items merged by `name`). Anything else in a
kustomization.yaml is an error, so an overlay cannot silently rely on an unsupported feature.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "replicas",
    "patches",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and base
        and patch
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        by_name = {item["name"]: item for item in base}
        out = [_merge(by_name[i["name"]], i) if i["name"] in by_name else i for i in patch]
        patched = {i["name"] for i in patch}
        return [i for i in base if i["name"] not in patched] + out
    return copy.deepcopy(patch)


def render(directory: Path) -> list[dict[str, Any]]:
    """Render the kustomization in `directory` to a list of objects."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kust) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    objects: list[dict[str, Any]] = []
    for ref in kust.get("resources", []):
        target = (directory / ref).resolve()
        objects.extend(render(target) if target.is_dir() else _load_all(target))
    for entry in kust.get("patches", []):
        for patch in _load_all(directory / entry["path"]):
            matches = [
                o
                for o in objects
                if o["kind"] == patch["kind"] and o["metadata"]["name"] == patch["metadata"]["name"]
            ]
            if len(matches) != 1:
                raise ValueError(f"patch {entry['path']} matches {len(matches)} objects")
            objects[objects.index(matches[0])] = _merge(matches[0], patch)
    for obj in objects:
        _transform(obj, kust)
    return objects


def _transform(obj: dict[str, Any], kust: dict[str, Any]) -> None:
    meta = obj.setdefault("metadata", {})
    if "namespace" in kust and obj["kind"] not in CLUSTER_SCOPED:
        meta["namespace"] = kust["namespace"]
        for subject in obj.get("subjects", []):
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = kust["namespace"]
    for label_set in kust.get("labels", []):
        meta.setdefault("labels", {}).update(label_set["pairs"])
        if label_set.get("includeSelectors"):
            raise ValueError("includeSelectors: true is not supported")
    spec = obj.get("spec", {})
    for rep in kust.get("replicas", []):
        if obj["kind"] == "Deployment" and meta["name"] == rep["name"]:
            spec["replicas"] = rep["count"]
    pod = spec.get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for image in kust.get("images", []):
            if container["image"].split(":")[0] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
