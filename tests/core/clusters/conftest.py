from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeck.core.config import ClusterConfig
from tests.utils.fake_k8s import FakeKubernetes, write_kubeconfig


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes() as server:
        yield server


@pytest.fixture
def kubeconfig(tmp_path: Path, fake: FakeKubernetes) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", {"gpu-a100": fake})


@pytest.fixture
def cluster(kubeconfig: Path) -> ClusterConfig:
    return ClusterConfig(
        name="gpu-a100",
        backend="kubernetes",
        kubeconfig=str(kubeconfig),
        context="gpu-a100",
        api_timeout_seconds=2,
    )
