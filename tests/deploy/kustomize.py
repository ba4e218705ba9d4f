"""A small kustomize-compatible renderer for the features deploy/kustomize uses, so the deploy
tests run where kubectl is not installed (test_manifests.py compares it with `kubectl
kustomize` where it is).

Supports: resources (files, and directories with a kustomization.yaml), components (directories
of kind Component, applied after the resources and before the kustomization's own patches),
namespace (with kustomize's rule for RoleBinding subjects), labels (pairs, includeSelectors
false), images, replicas, and strategic-merge patches matched by kind and name: maps merge
deeply, a null deletes a key, the lists Kubernetes merges by key (containers, volumes, env by
name; volumeMounts by mountPath; ports by containerPort) merge by that key, other lists are
replaced, and `$patch: delete` removes an object or a list item. Anything else in a
kustomization is an error, so an overlay cannot silently rely on an unsupported feature.
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
    "components",
    "namespace",
    "labels",
    "images",
    "replicas",
    "patches",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
# Strategic-merge keys of the lists in the objects deploy/ uses (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
DIRECTIVE = "$patch"

Obj = dict[str, Any]


def load_all(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Obj]:
    """Render the kustomization in `directory` to a list of objects."""
    return _build(directory, "Kustomization", [])


def _build(directory: Path, kind: str, objects: list[Obj]) -> list[Obj]:
    """Render `directory`; a Component also transforms the `objects` it is applied to."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kust) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    if kust.get("kind", "Kustomization") != kind:
        raise ValueError(f"{directory}: expected a {kind}, found a {kust.get('kind')}")
    objects = list(objects)
    for ref in kust.get("resources", []):
        target = (directory / ref).resolve()
        objects.extend(render(target) if target.is_dir() else load_all(target))
    for ref in kust.get("components", []):
        objects = _build((directory / ref).resolve(), "Component", objects)
    for entry in kust.get("patches", []):
        for patch in load_all(directory / entry["path"]):
            objects = _apply_patch(objects, patch, where=f"{directory}/{entry['path']}")
    service_accounts = {_name(o) for o in objects if o["kind"] == "ServiceAccount"}
    for obj in objects:
        _transform(obj, kust, service_accounts=service_accounts)
    return objects


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _apply_patch(objects: list[Obj], patch: Obj, *, where: str) -> list[Obj]:
    meta = patch["metadata"]
    matches = [
        o
        for o in objects
        if o["kind"] == patch["kind"]
        and _name(o) == meta["name"]
        and meta.get("namespace") in (None, o["metadata"].get("namespace"))
    ]
    if len(matches) != 1:
        raise ValueError(f"patch {where} matches {len(matches)} objects")
    index = objects.index(matches[0])
    if patch.get(DIRECTIVE) == "delete":
        return objects[:index] + objects[index + 1 :]
    return [*objects[:index], _merge(matches[0], patch), *objects[index + 1 :]]


def _merge(base: Any, patch: Any, field: str | None = None) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = _merge(base[key], value, key) if key in base else _clean(value)
        return out
    key = MERGE_KEYS.get(field or "")
    if key is not None and isinstance(base, list) and isinstance(patch, list):
        return _merge_list(base, patch, key)
    return _clean(patch)


def _merge_list(base: list[Obj], patch: list[Obj], key: str) -> list[Obj]:
    """kustomize's order: the patch's items first (merged with their base item), then the
    base items the patch does not name."""
    by_key = {item[key]: item for item in base}
    out = [
        _merge(by_key[item[key]], item) if item[key] in by_key else _clean(item)
        for item in patch
        if item.get(DIRECTIVE) != "delete"
    ]
    named = {item[key] for item in patch}
    return out + [item for item in base if item[key] not in named]


def _clean(value: Any) -> Any:
    """A patch value added as it is, without strategic-merge directives."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != DIRECTIVE}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return copy.deepcopy(value)


def _transform(obj: Obj, kust: dict[str, Any], *, service_accounts: set[str]) -> None:
    meta = obj.setdefault("metadata", {})
    if "namespace" in kust and obj["kind"] not in CLUSTER_SCOPED:
        meta["namespace"] = kust["namespace"]
    if "namespace" in kust and obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
        # kustomize moves a ServiceAccount subject along only when it has no namespace of its
        # own and names a ServiceAccount of this build (or "default"); others stay as written.
        for subject in obj.get("subjects", []):
            if (
                subject.get("kind") == "ServiceAccount"
                and "namespace" not in subject
                and (subject["name"] in service_accounts or subject["name"] == "default")
            ):
                subject["namespace"] = kust["namespace"]
    for label_set in kust.get("labels", []):
        if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
            raise ValueError("labels with includeSelectors/includeTemplates are not supported")
        meta.setdefault("labels", {}).update(label_set["pairs"])
    spec = obj.get("spec", {})
    for rep in kust.get("replicas", []):
        if obj["kind"] == "Deployment" and meta["name"] == rep["name"]:
            spec["replicas"] = rep["count"]
    pod = spec.get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for image in kust.get("images", []):
            if container["image"].split(":")[0] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
