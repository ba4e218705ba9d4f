"""Kubernetes RBAC authorisation over rendered manifests: may this ServiceAccount do this verb
on this object? The same rules as the API server's RBAC authoriser: a RoleBinding grants its
Role (or a ClusterRole) in its own namespace, a ClusterRoleBinding everywhere; a rule matches
on API group, resource and verb ("*" for any) and, when it lists resourceNames, the name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Request:
    verb: str
    group: str
    resource: str
    namespace: str
    name: str


def allowed(objects: list[Obj], account: tuple[str, str], request: Request) -> bool:
    """Whether the ServiceAccount `account` = (namespace, name) may make `request`."""
    roles = {
        (o["metadata"].get("namespace"), o["metadata"]["name"]): o
        for o in objects
        if o["kind"] == "Role"
    }
    cluster_roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
    for binding in objects:
        if binding["kind"] == "RoleBinding":
            if binding["metadata"].get("namespace") != request.namespace:
                continue
        elif binding["kind"] != "ClusterRoleBinding":
            continue
        if not any(_names(subject, account) for subject in binding.get("subjects", [])):
            continue
        ref = binding["roleRef"]
        role = (
            cluster_roles.get(ref["name"])
            if ref["kind"] == "ClusterRole"
            else roles.get((binding["metadata"].get("namespace"), ref["name"]))
        )
        if role is not None and any(_grants(rule, request) for rule in role.get("rules", [])):
            return True
    return False


def _names(subject: Obj, account: tuple[str, str]) -> bool:
    return (
        subject.get("kind") == "ServiceAccount"
        and (subject.get("namespace"), subject.get("name")) == account
    )


def _grants(rule: Obj, request: Request) -> bool:
    def has(values: list[str], wanted: str) -> bool:
        return "*" in values or wanted in values

    names = rule.get("resourceNames") or []
    return (
        has(rule.get("apiGroups", []), request.group)
        and has(rule.get("resources", []), request.resource)
        and has(rule.get("verbs", []), request.verb)
        and (not names or request.name in names)
    )
