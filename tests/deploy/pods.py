"""What a rendered pod would see: its modeldeck.yaml (from the ConfigMap it mounts), its
effective settings (image ENV < container env, both over the file, as modeldeck reads them)
and whether the Parquet store it writes lives on a volume that every store user shares."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import pytest

from modeldeck.core.config import Settings, load_settings

Obj = dict[str, Any]
# The processes that read and write the Parquet store (ingestion, checks, reports); the bot
# reads check results from the database only.
STORE_USERS = {"api", "scheduler", "dashboard"}


@dataclass
class Container:
    deployment: Obj
    spec: Obj

    @property
    def name(self) -> str:
        return f"{self.deployment['metadata']['name']}/{self.spec['name']}"

    @property
    def pod(self) -> Obj:
        return dict(self.deployment["spec"]["template"]["spec"])

    @property
    def args(self) -> list[str]:
        return [str(a) for a in self.spec.get("args", [])]

    @property
    def command(self) -> str:
        return self.args[0] if self.args else ""

    def volume(self, name: str) -> Obj:
        (volume,) = [v for v in self.pod.get("volumes", []) if v["name"] == name]
        return dict(volume)

    def mount_of(self, path: str) -> Obj | None:
        """The volume mount that holds `path` (the deepest one)."""
        holding = [
            m
            for m in self.spec.get("volumeMounts", [])
            if PurePosixPath(path).is_relative_to(m["mountPath"])
        ]
        return max(holding, key=lambda m: len(m["mountPath"]), default=None)


def containers(objects: list[Obj], *, init: bool = False) -> list[Container]:
    out = []
    for dep in (o for o in objects if o["kind"] == "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        for spec in pod.get("initContainers" if init else "containers", []):
            out.append(Container(dep, spec))
    return out


def config_text(objects: list[Obj], container: Container) -> str:
    """The modeldeck.yaml this container reads (MODELDECK_CONFIG, from a ConfigMap mount)."""
    env = {e["name"]: e.get("value") for e in container.spec.get("env", [])}
    path = env["MODELDECK_CONFIG"]
    mount = container.mount_of(path)
    assert mount is not None, f"{container.name}: nothing mounted at {path}"
    config_map = container.volume(mount["name"])["configMap"]["name"]
    key = str(PurePosixPath(path).relative_to(mount["mountPath"]))
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == config_map]
    return str(cm["data"][key])


def settings_of(
    objects: list[Obj], container: Container, image_env: dict[str, str], tmp: Path
) -> Settings:
    """The settings modeldeck would load in this container (env beats the file)."""
    config = tmp / f"{container.name.replace('/', '-')}.yaml"
    config.write_text(config_text(objects, container))
    env = {**image_env, **{e["name"]: e["value"] for e in container.spec.get("env", [])}}
    env.pop("MODELDECK_CONFIG", None)
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.upper().startswith("MODELDECK_")]:
            mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, value)
        return load_settings(config)


def is_remote(url: str) -> bool:
    protocol, _ = fsspec.core.split_protocol(url)
    return protocol not in (None, "file", "local")


def store_problems(
    objects: list[Obj], *, image_env: dict[str, str], workdir: str, tmp: Path
) -> list[str]:
    """Why the store users of these manifests could not write one shared store (none: [])."""
    problems: list[str] = []
    claims: set[str] = set()
    pvcs = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PersistentVolumeClaim"}
    users = [c for c in containers(objects) if c.command in STORE_USERS]
    for container in users:
        data_dir = settings_of(objects, container, image_env, tmp).data_dir
        if is_remote(data_dir):
            continue
        path = str(PurePosixPath(container.spec.get("workingDir", workdir)) / data_dir)
        mount = container.mount_of(path)
        if mount is None or mount.get("readOnly"):
            problems.append(f"{container.name}: data_dir {path} is on no writable volume")
            continue
        claim = container.volume(mount["name"]).get("persistentVolumeClaim", {}).get("claimName")
        if claim is None:
            problems.append(f"{container.name}: data_dir {path} is not on a shared volume")
        elif claim not in pvcs:
            problems.append(f"{container.name}: claim {claim} is not in the manifests")
        elif "ReadWriteMany" not in pvcs[claim]["spec"]["accessModes"]:
            problems.append(f"{container.name}: claim {claim} is not ReadWriteMany")
        else:
            claims.add(claim)
    if len(claims) > 1:
        problems.append(f"the store users mount different claims: {sorted(claims)}")
    return problems
