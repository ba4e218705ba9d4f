"""deploy/Dockerfile and deploy/compose.yaml without Docker: the image's stages, user, extras
and the directories its volumes mount on (read by tests/deploy/dockerfile.py); compose against
the compose spec and what its services need; Prometheus config through promtool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from modeldeck.core.config import load_settings
from tests.deploy import dockerfile
from tests.deploy.conftest import DEPLOY

TEXT = (DEPLOY / "Dockerfile").read_text()
STAGES = dockerfile.parse(TEXT)
RUNTIME = STAGES[-1]
PYPROJECT = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
# compose services that run the modeldeck image, and those of them that use the store.
MODELDECK = {n for n, s in COMPOSE["services"].items() if s.get("image") == "modeldeck:latest"}
STORE_USERS = {"api", "scheduler", "dashboard"}


def runtime_user() -> tuple[int, int]:
    fs = dockerfile.filesystem(RUNTIME)
    (user,) = RUNTIME.all("USER")
    return fs.resolve_user(user)


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    assert len(STAGES) >= 2 and RUNTIME.name == "runtime"
    assert runtime_user() == (10001, 10001)
    assert RUNTIME.all("HEALTHCHECK") and "/healthz" in RUNTIME.env()["HEALTHCHECK_URL"]
    assert RUNTIME.all("ENTRYPOINT") == ['["modeldeck"]']


def test_the_image_installs_the_object_store_extras() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert [r.split(">=")[0] for r in extras["s3"]] == ["s3fs"]
    assert [r.split(">=")[0] for r in extras["gcs"]] == ["gcsfs"]
    for requirement in extras["s3"] + extras["gcs"]:
        assert "<" not in requirement and "==" not in requirement, "lower bounds only"
    (install,) = [r for r in RUNTIME.all("RUN") if "pip install" in r]
    assert '"modeldeck[s3,gcs]"' in install and "--no-index" in install
    # The build stage must have built wheels for the extras, or --no-index cannot find them.
    assert any("[s3,gcs]" in r and "pip wheel" in r for r in STAGES[0].all("RUN"))


def test_the_image_leaves_data_dir_to_the_config() -> None:
    """The environment beats modeldeck.yaml: an image default for MODELDECK_DATA_DIR would
    silently override `data_dir: s3://...` in the config file."""
    assert not [name for name in RUNTIME.env() if name.startswith("MODELDECK_DATA_DIR")]


def test_every_compose_volume_mounts_on_a_directory_the_runtime_user_owns() -> None:
    """Docker fills an empty named volume from the image's directory, owner included: a
    directory missing from the image makes a root-owned volume that user 10001 cannot write."""
    owners = dockerfile.filesystem(RUNTIME).owners
    named = set(COMPOSE["volumes"])
    checked = 0
    for name in MODELDECK:
        for volume in COMPOSE["services"][name].get("volumes", []):
            source, target = volume.split(":")[:2]
            if source in named:
                assert owners.get(target) == runtime_user(), f"{name}: {target} in the image"
                checked += 1
    assert checked >= len(STORE_USERS)


def test_compose_store_users_keep_data_dir_on_the_volume(tmp_path: Path) -> None:
    for name in STORE_USERS:
        service = COMPOSE["services"][name]
        env = {**RUNTIME.env(), **{k: str(v) for k, v in service["environment"].items()}}
        mounts = dict(reversed(v.split(":")[:2]) for v in service["volumes"])
        config = (DEPLOY / mounts.pop(env.pop("MODELDECK_CONFIG"))).resolve()
        with pytest.MonkeyPatch.context() as mp:
            for var in [v for v in os.environ if v.upper().startswith("MODELDECK_")]:
                mp.delenv(var)
            for var, value in env.items():
                mp.setenv(var, value)
            data_dir = load_settings(config).data_dir
        path = PurePosixPath(RUNTIME.workdir()) / data_dir
        volumes = [t for t, s in mounts.items() if s in COMPOSE["volumes"]]
        assert any(path.is_relative_to(t) for t in volumes), f"{name}: {path} is not on a volume"


def test_compose_matches_the_compose_spec() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(COMPOSE, schema)
    services: dict[str, Any] = COMPOSE["services"]
    assert {"postgres", "prometheus", "api", "scheduler", "dashboard", "migrate"} <= set(services)
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_compose_mounts_a_valid_config() -> None:
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
