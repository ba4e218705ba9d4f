"""The Kubernetes backend, with the real client, against the fake API server over HTTP."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from modeldeck.core.clusters import connect
from modeldeck.core.clusters.backend import ClusterUnreachable, Phase, Release, Running, Target
from modeldeck.core.clusters.k8s import KubernetesBackend
from modeldeck.core.clusters.kubeclient import TargetMissing
from modeldeck.core.config import ClusterConfig, Settings
from modeldeck.core.errors import BackendUnavailable
from tests.utils.fake_k8s import DEPLOYMENT, FakeKubernetes, write_kubeconfig

TARGET = Target(
    cluster="gpu-a100", namespace="ml-prod", name="fraud", model="fraud", environment="production"
)
RELEASE = Release(
    model="fraud",
    version="1.3.0",
    image="ghcr.io/acme/fraud:1.3.0",
    artifact_uri="s3://models/fraud/1.3.0",
    deployment_id=42,
)


@pytest.fixture
def backend(fake: FakeKubernetes, cluster: ClusterConfig) -> KubernetesBackend:
    fake.add_deployment(
        "ml-prod",
        "fraud",
        image="ghcr.io/acme/fraud:1.2.0",
        version="1.2.0",
        containers=[
            {
                "name": "fraud",
                "image": "ghcr.io/acme/fraud:1.2.0",
                "env": [
                    {"name": "MODEL_VERSION", "value": "1.2.0"},
                    {"name": "WORKERS", "value": "4"},
                ],
            },
            {"name": "envoy", "image": "envoyproxy/envoy:v1.31"},
        ],
    )
    return KubernetesBackend(cluster)


def test_apply_patches_image_version_and_annotations_with_a_strategic_merge(
    fake: FakeKubernetes, backend: KubernetesBackend
) -> None:
    before = backend.apply(TARGET, RELEASE)
    assert before == Running(
        version="1.2.0", image="ghcr.io/acme/fraud:1.2.0", deployment_id=None, ready=True
    )
    [patch] = fake.patches()
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.path == "/apis/apps/v1/namespaces/ml-prod/deployments/fraud"
    obj = fake.get(DEPLOYMENT, "ml-prod", "fraud")
    annotations = {
        "modeldeck.io/model": "fraud",
        "modeldeck.io/version": "1.3.0",
        "modeldeck.io/deployment-id": "42",
    }
    assert obj["metadata"]["annotations"] == annotations
    template = obj["spec"]["template"]
    assert template["metadata"]["annotations"] == annotations
    assert template["metadata"]["labels"] == {
        "app": "fraud",
        "modeldeck.io/model": "fraud",
        "modeldeck.io/version": "1.3.0",
    }
    fraud, envoy = template["spec"]["containers"]
    assert fraud["image"] == "ghcr.io/acme/fraud:1.3.0"
    assert fraud["env"] == [
        {"name": "MODEL_VERSION", "value": "1.3.0"},
        {"name": "WORKERS", "value": "4"},
    ]  # merged by name, not replaced
    assert envoy == {"name": "envoy", "image": "envoyproxy/envoy:v1.31"}  # sidecar untouched
    assert obj["metadata"]["generation"] == 2
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "fraud"}}


def test_rollout_status_follows_the_deployment_controller(
    fake: FakeKubernetes, backend: KubernetesBackend
) -> None:
    fake.set_mode(DEPLOYMENT, "ml-prod", "fraud", "hold")
    backend.apply(TARGET, RELEASE)
    status = backend.rollout_status(TARGET, RELEASE)
    assert status.phase == Phase.progressing
    assert status.message == "1 of 2 new replicas have been updated"
    assert backend.running(TARGET) == Running(
        version="1.3.0", image="ghcr.io/acme/fraud:1.3.0", deployment_id=42, ready=True
    )
    fake.finish(DEPLOYMENT, "ml-prod", "fraud")
    status = backend.rollout_status(TARGET, RELEASE)
    assert status.phase == Phase.available


def test_an_unobserved_generation_is_still_progressing(
    fake: FakeKubernetes, backend: KubernetesBackend
) -> None:
    fake.set_mode(DEPLOYMENT, "ml-prod", "fraud", "ok", seconds=3600)
    backend.apply(TARGET, RELEASE)
    status = backend.rollout_status(TARGET, RELEASE)
    assert status.phase == Phase.progressing
    assert status.message == "waiting for the Deployment controller to observe the new spec"


def test_progress_deadline_exceeded_is_a_failure_in_the_clusters_words(
    fake: FakeKubernetes, backend: KubernetesBackend
) -> None:
    fake.set_mode(DEPLOYMENT, "ml-prod", "fraud", "stuck", deadline=0)
    backend.apply(TARGET, RELEASE)
    status = backend.rollout_status(TARGET, RELEASE)
    assert status.phase == Phase.failed
    assert status.message.startswith('ProgressDeadlineExceeded: ReplicaSet "fraud-')
    assert status.message.endswith("has timed out progressing.")


def test_a_template_changed_by_someone_else_fails_the_rollout(
    fake: FakeKubernetes, backend: KubernetesBackend
) -> None:
    backend.apply(TARGET, RELEASE)
    fake.edit(
        DEPLOYMENT,
        "ml-prod",
        "fraud",
        lambda obj: obj["spec"]["template"]["metadata"]["annotations"].update(
            {"modeldeck.io/deployment-id": "hand-edit"}
        ),
    )
    status = backend.rollout_status(TARGET, RELEASE)
    assert status.phase == Phase.failed
    assert "changed by someone else" in status.message


def test_a_deployment_deleted_by_hand(fake: FakeKubernetes, backend: KubernetesBackend) -> None:
    fake.delete(DEPLOYMENT, "ml-prod", "fraud")
    assert backend.running(TARGET) is None
    with pytest.raises(TargetMissing, match='deployments.apps "fraud" not found') as exc:
        backend.apply(TARGET, RELEASE)
    assert exc.value.hint and "never creates them" in exc.value.hint
    assert fake.patches() == []


def test_api_down_is_backend_unavailable(fake: FakeKubernetes, backend: KubernetesBackend) -> None:
    fake.down()
    with pytest.raises(
        BackendUnavailable,
        match="unreachable during reading Deployment ml-prod/fraud.*Connection refused",
    ):
        backend.apply(TARGET, RELEASE)
    fake.up()
    assert backend.running(TARGET) is not None  # back once the API server is


def test_server_errors_carry_the_status_message(
    fake: FakeKubernetes, backend: KubernetesBackend
) -> None:
    fake.fail_next(1, status=500)
    with pytest.raises(
        BackendUnavailable, match="HTTP 500 Internal error occurred: etcdserver: request timed out"
    ):
        backend.running(TARGET)
    fake.fail_next(1, status=403)
    with pytest.raises(BackendUnavailable, match="refused reading .* HTTP 403") as exc:
        backend.running(TARGET)
    assert exc.value.hint and "RBAC" in exc.value.hint


def test_slow_responses_time_out_instead_of_hanging(
    fake: FakeKubernetes, cluster: ClusterConfig
) -> None:
    fake.add_deployment("ml-prod", "fraud", image="a:1")
    backend = KubernetesBackend(cluster.model_copy(update={"api_timeout_seconds": 0.3}))
    fake.slow_next(1, seconds=3)
    start = time.perf_counter()
    with pytest.raises(BackendUnavailable, match="ReadTimeoutError"):
        backend.running(TARGET)
    assert time.perf_counter() - start < 2.5


def test_wrong_token_is_refused(fake: FakeKubernetes, tmp_path: Path) -> None:
    fake.add_deployment("ml-prod", "fraud", image="a:1")
    wrong = FakeKubernetes(token="other")
    wrong.port, wrong.url = fake.port, fake.url  # same server, another token in the kubeconfig
    config = write_kubeconfig(tmp_path / "bad", {"gpu-a100": wrong})
    backend = KubernetesBackend(
        ClusterConfig(
            name="gpu-a100", backend="kubernetes", kubeconfig=str(config), context="gpu-a100"
        )
    )
    with pytest.raises(BackendUnavailable, match="HTTP 401"):
        backend.running(TARGET)


def test_each_cluster_uses_its_own_kubeconfig_context(tmp_path: Path, fake: FakeKubernetes) -> None:
    with FakeKubernetes() as other:
        config = write_kubeconfig(tmp_path / "two", {"gpu-a100": fake, "gpu-l4": other})
        fake.add_deployment("ml-prod", "fraud", image="a100:1", version="1")
        other.add_deployment("ml-prod", "fraud", image="l4:7", version="7")
        a100 = KubernetesBackend(
            ClusterConfig(
                name="gpu-a100", backend="kubernetes", kubeconfig=str(config), context="gpu-a100"
            )
        )
        l4 = KubernetesBackend(
            ClusterConfig(
                name="gpu-l4", backend="kubernetes", kubeconfig=str(config), context="gpu-l4"
            )
        )
        assert a100.running(TARGET) == Running(version="1", image="a100:1", ready=True)
        assert l4.running(TARGET) == Running(version="7", image="l4:7", ready=True)


def test_a_missing_kubeconfig_or_context_is_a_clear_error(tmp_path: Path, kubeconfig: Path) -> None:
    with pytest.raises(BackendUnavailable, match="cannot load kubeconfig") as exc:
        KubernetesBackend(
            ClusterConfig(name="x", backend="kubernetes", kubeconfig=str(tmp_path / "nope"))
        )
    assert exc.value.hint and "clusters[].kubeconfig" in exc.value.hint
    with pytest.raises(BackendUnavailable, match="context 'staging'"):
        KubernetesBackend(
            ClusterConfig(
                name="x", backend="kubernetes", kubeconfig=str(kubeconfig), context="staging"
            )
        )


def test_a_named_container_annotation_picks_the_container(
    fake: FakeKubernetes, cluster: ClusterConfig
) -> None:
    fake.add_deployment(
        "ml-prod",
        "fraud",
        image="x",
        containers=[{"name": "proxy", "image": "envoy:1"}, {"name": "server", "image": "triton:1"}],
    )
    fake.edit(
        DEPLOYMENT,
        "ml-prod",
        "fraud",
        lambda o: o["metadata"]["annotations"].update({"modeldeck.io/container": "server"}),
    )
    KubernetesBackend(cluster).apply(TARGET, RELEASE)
    proxy, server = fake.get(DEPLOYMENT, "ml-prod", "fraud")["spec"]["template"]["spec"][
        "containers"
    ]
    assert proxy == {"name": "proxy", "image": "envoy:1"}
    assert server["image"] == "ghcr.io/acme/fraud:1.3.0"


def test_kubectl_set_image_during_the_rollout_fails_it_although_our_annotations_stay(
    fake: FakeKubernetes, backend: KubernetesBackend
) -> None:
    fake.set_mode(DEPLOYMENT, "ml-prod", "fraud", "hold")
    backend.apply(TARGET, RELEASE)

    def set_image(obj: dict[str, Any]) -> None:  # what `kubectl set image` changes
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/acme/fraud:hotfix"

    fake.edit(DEPLOYMENT, "ml-prod", "fraud", set_image)
    fake.finish(DEPLOYMENT, "ml-prod", "fraud")  # the hand-made ReplicaSet becomes available
    annotations = fake.get(DEPLOYMENT, "ml-prod", "fraud")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["modeldeck.io/deployment-id"] == "42"
    status = backend.rollout_status(TARGET, RELEASE)
    assert status.phase == Phase.failed
    assert status.message == (
        "Deployment fraud was changed by someone else during the rollout (it now runs image "
        "ghcr.io/acme/fraud:hotfix instead of ghcr.io/acme/fraud:1.3.0)"
    )


def test_a_model_version_env_changed_by_hand_fails_the_rollout(
    fake: FakeKubernetes, backend: KubernetesBackend
) -> None:
    backend.apply(TARGET, RELEASE)

    def set_env(obj: dict[str, Any]) -> None:  # `kubectl set env deployment/fraud MODEL_VERSION=`
        for env in obj["spec"]["template"]["spec"]["containers"][0]["env"]:
            if env["name"] == "MODEL_VERSION":
                env["value"] = "1.2.0"

    fake.edit(DEPLOYMENT, "ml-prod", "fraud", set_env)
    status = backend.rollout_status(TARGET, RELEASE)
    assert status.phase == Phase.failed
    assert "it now runs version 1.2.0 instead of 1.3.0" in status.message


def test_backends_of_one_cluster_share_one_api_client(
    session: Session, fake: FakeKubernetes, cluster: ClusterConfig, tmp_path: Path
) -> None:
    settings = Settings(clusters=[cluster], database_url=f"sqlite:///{tmp_path}/x.db")
    first = connect.backend_for(settings, "gpu-a100", session=session)
    again = connect.backend_for(settings, "gpu-a100", session=session)
    assert isinstance(first, KubernetesBackend) and isinstance(again, KubernetesBackend)
    assert first is not again and first.api.api_client is again.api.api_client
    # A rewritten kubeconfig (rotated credentials) is loaded again.
    assert cluster.kubeconfig is not None
    config = Path(cluster.kubeconfig)
    config.write_text(config.read_text())
    stamp = config.stat().st_mtime + 5
    os.utime(config, (stamp, stamp))
    fresh = connect.backend_for(settings, "gpu-a100", session=session)
    assert isinstance(fresh, KubernetesBackend)
    assert fresh.api.api_client is not first.api.api_client


def test_an_object_the_client_cannot_read_is_backend_unavailable_not_a_crash(
    fake: FakeKubernetes, backend: KubernetesBackend
) -> None:
    def no_name(obj: dict[str, Any]) -> None:  # the client's V1Container requires a name
        obj["spec"]["template"]["spec"]["containers"][0].pop("name")

    fake.malform(DEPLOYMENT, "ml-prod", "fraud", no_name)
    with pytest.raises(BackendUnavailable) as exc:
        backend.running(TARGET)
    assert not isinstance(exc.value, ClusterUnreachable)  # one object, not the cluster
    assert exc.value.message.startswith(
        "cluster gpu-a100 returned an object modeldeck cannot read during reading Deployment "
        "ml-prod/fraud on cluster gpu-a100: ValidationError: 1 validation error for V1Container"
    )
    assert exc.value.hint and "kubectl get -o yaml" in exc.value.hint
    with pytest.raises(BackendUnavailable, match="cannot read during reading"):
        backend.apply(TARGET, RELEASE)
    assert fake.patches() == []  # the read before the patch failed: nothing was changed
    fake.malform(DEPLOYMENT, "ml-prod", "fraud", None)
    assert backend.running(TARGET) is not None


def test_a_server_that_hangs_up_is_unreachable(
    fake: FakeKubernetes, backend: KubernetesBackend
) -> None:
    fake.hang_up()
    with pytest.raises(ClusterUnreachable, match="unreachable during reading.*RemoteDisconnected"):
        backend.running(TARGET)
    assert len(fake.requests) == 1  # a request the server may have seen is never retried
