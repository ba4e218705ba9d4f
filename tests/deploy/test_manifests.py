"""deploy/: Kustomize overlays against the Kubernetes schemas, compose against the compose
spec, Prometheus config through promtool, and the configs inside against modeldeck's Settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from modeldeck.core.config import Settings, load_settings
from tests.deploy.kustomize import render

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OVERLAYS = ["staging", "production"]
K8S_VERSION = "1.30"


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(DEPLOY / "kustomize" / "overlays" / request.param)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_object_is_valid_kubernetes(rendered: list[dict[str, Any]]) -> None:
    assert len(rendered) >= 10
    for obj in rendered:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_processes_and_replicas(rendered: list[dict[str, Any]]) -> None:
    deployments = by_kind(rendered, "Deployment")
    assert set(deployments) == {
        "modeldeck-api",
        "modeldeck-scheduler",
        "modeldeck-bot",
        "modeldeck-dashboard",
    }
    scheduler = deployments["modeldeck-scheduler"]["spec"]
    # One scheduler leader: never two pods during a rollout either.
    assert scheduler["replicas"] == 1 and scheduler["strategy"]["type"] == "Recreate"
    namespaces = {o["metadata"].get("namespace") for o in rendered}
    assert len(namespaces) == 1 and None not in namespaces
    for dep in deployments.values():
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["image"].startswith("ghcr.io/modeldeck/modeldeck:")
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"secretRef": {"name": "modeldeck-secrets"}} in container["envFrom"]
        assert "memory" in container["resources"]["limits"]


def test_role_only_patches_what_modeldeck_manages(rendered: list[dict[str, Any]]) -> None:
    (role,) = by_kind(rendered, "Role").values()
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    resources_ = {r for rule in role["rules"] for r in rule["resources"]}
    assert verbs <= {"get", "list", "watch", "patch"}
    assert resources_ == {"deployments", "inferenceservices", "pods"}
    (binding,) = by_kind(rendered, "RoleBinding").values()
    assert binding["subjects"][0]["namespace"] == role["metadata"]["namespace"]


def test_configmap_is_a_valid_modeldeck_config(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = by_kind(rendered, "ConfigMap")["modeldeck-config"]["data"]["modeldeck.yaml"]
    path = tmp_path / "modeldeck.yaml"
    path.write_text(config)
    settings = load_settings(path)
    assert isinstance(settings, Settings) and settings.environments


def test_compose_matches_the_compose_spec() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    jsonschema.validate(compose, schema)
    services = compose["services"]
    assert {"postgres", "prometheus", "api", "scheduler", "dashboard", "migrate"} <= set(services)
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_compose_mounts_a_valid_config(tmp_path: Path) -> None:
    settings = load_settings(DEPLOY / "modeldeck.example.yaml")
    assert settings.environments


def test_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("promtool is required in CI (Debian package prometheus)")
        pytest.skip("promtool not installed")
    result = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2
    assert "USER 10001" in text and "HEALTHCHECK" in text
    assert "/healthz" in text
