"""deploy/kustomize: every overlay, with and without each optional component, against the
Kubernetes schemas and against what modeldeck needs at run time — the store every api,
scheduler and dashboard pod writes, the schema upgrade before each process, RBAC that reaches
every configured target but never modeldeck itself, and command lines the CLI accepts."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml

from modeldeck.core.cli.main import app
from modeldeck.core.config import BackendKind, load_settings
from tests.deploy import dockerfile
from tests.deploy.conftest import DEPLOY, OVERLAYS, Variant, VariantFactory
from tests.deploy.pods import config_text, containers, store_problems
from tests.deploy.rbac import Request, allowed

K8S_VERSION = "1.30"
RUNTIME = dockerfile.parse((DEPLOY / "Dockerfile").read_text())[-1]
MODELS = ["fraud-detector", "eta-regressor"]  # any model: targets are "{model}" templates
# What modeldeck's cluster backends change, per backend.
SERVED_BY = {
    BackendKind.kubernetes: ("apps", "deployments"),
    BackendKind.kserve: ("serving.kserve.io", "inferenceservices"),
}


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_object_is_valid_kubernetes(variant: Variant) -> None:
    assert len(variant.objects) >= 9
    for obj in variant.objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_renderer_matches_kubectl_kustomize(
    overlay: str, variants: VariantFactory, tmp_path: Path
) -> None:
    """The Python renderer is what CI checks; here it must agree with kustomize itself."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (its kustomize checks the test renderer)")
    for components in [(), ("slack-bot", "dashboard-sign-in", "object-store")]:
        variant = variants(overlay, components)
        built = subprocess.run(
            [kubectl, "kustomize", str(variant.path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

        def keyed(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], Any]:
            return {
                (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
                for o in objects
            }

        assert keyed(variant.objects) == keyed([o for o in yaml.safe_load_all(built) if o])


def test_processes_replicas_and_namespaces(variant: Variant) -> None:
    deployments = by_kind(variant.objects, "Deployment")
    expected = {"modeldeck-api", "modeldeck-scheduler", "modeldeck-dashboard"}
    # The bot only with its component: without Slack tokens it would crash-loop.
    assert set(deployments) == expected | (
        {"modeldeck-bot"} if "slack-bot" in variant.components else set()
    )
    scheduler = deployments["modeldeck-scheduler"]["spec"]
    # One scheduler leader: never two pods during a rollout either.
    assert scheduler["replicas"] == 1 and scheduler["strategy"]["type"] == "Recreate"
    own = {d["metadata"]["namespace"] for d in deployments.values()}
    assert own == {"modeldeck"}
    for obj in variant.objects:
        if obj["kind"] not in ("Role", "RoleBinding"):
            assert obj["metadata"]["namespace"] == "modeldeck", obj["metadata"]["name"]
    for dep in deployments.values():
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        for one in [container, *pod.get("initContainers", [])]:
            assert one["image"].startswith("ghcr.io/modeldeck/modeldeck:")
            assert one["securityContext"]["allowPrivilegeEscalation"] is False
            assert one["securityContext"]["readOnlyRootFilesystem"] is True
            assert {"secretRef": {"name": "modeldeck-secrets"}} in one["envFrom"]
            assert "memory" in one["resources"]["limits"]


def test_every_store_user_writes_one_shared_store_or_a_remote_url(
    variant: Variant, tmp_path: Path
) -> None:
    problems = store_problems(
        variant.objects, image_env=RUNTIME.env(), workdir=RUNTIME.workdir(), tmp=tmp_path
    )
    assert problems == []
    users = [c for c in containers(variant.objects) if c.command in {"api", "scheduler"}]
    assert {c.command for c in users} == {"api", "scheduler"}


def test_the_store_check_names_each_pod_that_cannot_write(
    variants: VariantFactory, tmp_path: Path
) -> None:
    """Without the volume (object-store component, data_dir still local) or with a private
    emptyDir in its place, every store user is named; with data_dir s3:// none is."""

    def check(objects: list[dict[str, Any]]) -> list[str]:
        return store_problems(
            objects, image_env=RUNTIME.env(), workdir=RUNTIME.workdir(), tmp=tmp_path
        )

    no_volume = variants("production", ("object-store",), data_dir="/var/lib/modeldeck/data")
    problems = check(no_volume.objects)
    assert sorted(p.split(":")[0] for p in problems) == [
        "modeldeck-api/api",
        "modeldeck-dashboard/dashboard",
        "modeldeck-scheduler/scheduler",
    ]
    assert all("is on no writable volume" in p for p in problems)

    private = copy.deepcopy(variants("staging").objects)
    scheduler = by_kind(private, "Deployment")["modeldeck-scheduler"]["spec"]["template"]["spec"]
    (data,) = [v for v in scheduler["volumes"] if v["name"] == "data"]
    data.pop("persistentVolumeClaim")
    data["emptyDir"] = {}
    assert check(private) == [
        "modeldeck-scheduler/scheduler: data_dir /var/lib/modeldeck/data is not on a shared volume"
    ]


def test_every_modeldeck_process_upgrades_the_schema_first(variant: Variant) -> None:
    """An init container runs `modeldeck db upgrade` with the same image, config and secrets,
    so no version of modeldeck ever starts on an older schema."""
    for dep in by_kind(variant.objects, "Deployment").values():
        pod = dep["spec"]["template"]["spec"]
        (main,) = pod["containers"]
        (init,) = pod["initContainers"]
        assert init["args"] == ["db", "upgrade"]
        assert init["image"] == main["image"]
        assert init["envFrom"] == main["envFrom"]
        assert [e for e in init["env"] if e["name"] == "MODELDECK_CONFIG"] == [
            e for e in main["env"] if e["name"] == "MODELDECK_CONFIG"
        ]
        config_mount = [m for m in main["volumeMounts"] if m["mountPath"] == "/etc/modeldeck"]
        assert config_mount and config_mount[0] in init["volumeMounts"]


def test_modeldeck_may_patch_every_configured_target_and_never_itself(variant: Variant) -> None:
    objects = variant.objects
    deployments = by_kind(objects, "Deployment")
    accounts = {
        (d["metadata"]["namespace"], d["spec"]["template"]["spec"]["serviceAccountName"])
        for d in deployments.values()
    }
    (account,) = accounts
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for name, dep in deployments.items():
        for verb in ("get", "patch", "update", "delete"):
            request = Request(verb, "apps", "deployments", dep["metadata"]["namespace"], name)
            assert not allowed(objects, account, request), f"modeldeck may {verb} {name}"
    for resource in ("secrets", "configmaps", "pods"):
        assert not allowed(objects, account, Request("get", "", resource, "modeldeck", "x"))

    main = next(c for c in containers(objects) if c.command == "api")
    config = Path(variant.path) / "rendered-modeldeck.yaml"
    config.write_text(config_text(objects, main))
    settings = load_settings(config)
    clusters = {c.name: c for c in settings.clusters}
    checked = 0
    for env in settings.environments:
        cluster = clusters[env.cluster]
        if not cluster.in_cluster or cluster.backend not in SERVED_BY:
            continue  # reached with a kubeconfig's own credentials, or simulated
        group, resource = SERVED_BY[cluster.backend]
        for model in MODELS:
            target = env.target.replace("{model}", model)
            for verb in ("get", "patch"):
                request = Request(verb, group, resource, env.namespace, target)
                assert allowed(objects, account, request), f"{env.name}: cannot {verb} {target}"
            for verb in ("create", "delete", "update", "list"):
                request = Request(verb, group, resource, env.namespace, target)
                assert not allowed(objects, account, request), f"{env.name}: may {verb}"
            checked += 1
    assert checked >= len(MODELS)


def test_configmap_is_a_valid_modeldeck_config(variant: Variant, tmp_path: Path) -> None:
    for container in containers(variant.objects) + containers(variant.objects, init=True):
        path = tmp_path / "modeldeck.yaml"
        path.write_text(config_text(variant.objects, container))
        assert load_settings(path).environments


def test_every_command_line_is_one_the_cli_accepts(variant: Variant, tmp_path: Path) -> None:
    """Each container's args parse with modeldeck's own CLI: the command exists, and every
    option exists and has a valid value (a file it needs is given a real one here)."""
    group = typer.main.get_command(app)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[auth]\n")
    for container in containers(variant.objects) + containers(variant.objects, init=True):
        args = [str(secrets) if a.endswith("secrets.toml") else a for a in container.args]
        with group.context_class(group, info_name="modeldeck") as ctx:
            command: Any = group
            while hasattr(command, "get_command"):  # a group: the next word names a command
                name, args = args[0], args[1:]
                command = command.get_command(ctx, name)
                assert command is not None, f"{container.name}: no command {name!r}"
            command.make_context(name, args, parent=ctx)  # raises on a bad option or value


def test_dashboard_sign_in_passes_the_mounted_secret(variants: VariantFactory) -> None:
    for overlay in OVERLAYS:
        plain = by_kind(variants(overlay).objects, "Deployment")["modeldeck-dashboard"]
        assert "--secrets" not in plain["spec"]["template"]["spec"]["containers"][0]["args"]
        signed = variants(overlay, ("dashboard-sign-in",)).objects
        (container,) = [c for c in containers(signed) if c.command == "dashboard"]
        args = container.spec["args"]
        path = args[args.index("--secrets") + 1]
        mount = container.mount_of(path)
        assert mount is not None and mount.get("readOnly") is True
        secret = container.volume(mount["name"])["secret"]
        assert secret["secretName"] == "modeldeck-dashboard-auth"
        key = str(Path(path).relative_to(mount["mountPath"]))
        assert {"key": "secrets.toml", "path": key} in secret["items"]
