"""The Kustomize variants under test: each overlay as shipped, with each optional component
and with all of them, enabled the way docs/operations.md tells people to (uncomment the
component in overlays/<name>/modeldeck/kustomization.yaml; object-store also sets data_dir)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kustomize import render

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OVERLAYS = ["staging", "production"]
COMPONENTS = ["slack-bot", "dashboard-sign-in", "object-store"]
COMPONENT_SETS: list[tuple[str, ...]] = [(), *((c,) for c in COMPONENTS), tuple(COMPONENTS)]
LOCAL_DATA_DIR = "data_dir: /var/lib/modeldeck/data"
REMOTE_DATA_DIR = "s3://modeldeck-test/store"


@dataclass
class Variant:
    overlay: str
    components: tuple[str, ...]
    path: Path
    objects: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return "+".join([self.overlay, *self.components])


def make_variant(
    dest: Path, overlay: str, components: tuple[str, ...], *, data_dir: str | None = None
) -> Variant:
    """Copy deploy/kustomize to `dest`, enable `components` in `overlay` and render it."""
    shutil.copytree(DEPLOY / "kustomize", dest)
    app = dest / "overlays" / overlay / "modeldeck"
    kust = yaml.safe_load((app / "kustomization.yaml").read_text())
    if components:
        kust["components"] = [f"../../../components/{c}" for c in components]
    (app / "kustomization.yaml").write_text(yaml.safe_dump(kust, sort_keys=False))
    if data_dir is None and "object-store" in components:
        data_dir = REMOTE_DATA_DIR
    if data_dir is not None:
        config = (app / "config.yaml").read_text()
        assert LOCAL_DATA_DIR in config
        (app / "config.yaml").write_text(config.replace(LOCAL_DATA_DIR, f"data_dir: {data_dir}"))
    path = dest / "overlays" / overlay
    return Variant(overlay, components, path, render(path))


VariantFactory = Callable[..., Variant]


@pytest.fixture(scope="session")
def variants(tmp_path_factory: pytest.TempPathFactory) -> VariantFactory:
    """Renders a variant once per session (rendering copies and parses the whole tree)."""
    cache: dict[tuple[str, tuple[str, ...], str | None], Variant] = {}

    def get(overlay: str, components: tuple[str, ...] = (), data_dir: str | None = None) -> Variant:
        key = (overlay, components, data_dir)
        if key not in cache:
            dest = tmp_path_factory.mktemp("kustomize") / "kustomize"
            cache[key] = make_variant(dest, overlay, components, data_dir=data_dir)
        return cache[key]

    return get


@pytest.fixture(
    params=[(o, c) for o in OVERLAYS for c in COMPONENT_SETS],
    ids=["+".join([o, *c]) for o in OVERLAYS for c in COMPONENT_SETS],
)
def variant(request: pytest.FixtureRequest, variants: VariantFactory) -> Variant:
    overlay, components = request.param
    return variants(overlay, components)
