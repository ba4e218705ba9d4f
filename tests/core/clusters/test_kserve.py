"""The KServe backend, with the real client, against the fake API server over HTTP."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeldeck.core.clusters.backend import Phase, Release, RolloutStatus, Running, Target
from modeldeck.core.clusters.kserve import KServeBackend
from modeldeck.core.config import ClusterConfig
from modeldeck.core.errors import BackendUnavailable
from tests.utils.fake_k8s import ISVC, FakeKubernetes

TARGET = Target(
    cluster="gpu-a100", namespace="ml-prod", name="fraud", model="fraud", environment="production"
)
RELEASE = Release(
    model="fraud",
    version="1.3.0",
    image="ghcr.io/acme/fraud:1.3.0",
    artifact_uri="s3://models/fraud/1.3.0",
    deployment_id=9,
)


@pytest.fixture
def backend(cluster: ClusterConfig) -> KServeBackend:
    return KServeBackend(cluster.model_copy(update={"backend": "kserve"}))


def test_apply_patches_the_storage_uri_with_a_json_merge_patch(
    fake: FakeKubernetes, backend: KServeBackend
) -> None:
    fake.add_inference_service("ml-prod", "fraud", storage_uri="s3://models/fraud/1.2.0")
    before = backend.apply(TARGET, RELEASE)
    assert before == Running(version=None, artifact_uri="s3://models/fraud/1.2.0", ready=True)
    [patch] = fake.patches()
    # Custom resources refuse strategic merge: the fake answers 415 to it, like the API server.
    assert patch.content_type == "application/merge-patch+json"
    assert patch.path == (
        "/apis/serving.kserve.io/v1beta1/namespaces/ml-prod/inferenceservices/fraud"
    )
    obj = fake.get(ISVC, "ml-prod", "fraud")
    assert obj["spec"]["predictor"]["model"] == {
        "modelFormat": {"name": "sklearn"},
        "storageUri": "s3://models/fraud/1.3.0",
    }
    assert obj["metadata"]["annotations"]["modeldeck.io/deployment-id"] == "9"
    assert backend.rollout_status(TARGET, RELEASE).phase == Phase.available
    assert backend.running(TARGET) == Running(
        version="1.3.0", artifact_uri="s3://models/fraud/1.3.0", deployment_id=9, ready=True
    )


def test_a_container_predictor_gets_the_image_and_version(
    fake: FakeKubernetes, backend: KServeBackend
) -> None:
    fake.add_inference_service("ml-prod", "fraud", image="ghcr.io/acme/fraud:1.2.0")
    backend.apply(TARGET, RELEASE)
    [container] = fake.get(ISVC, "ml-prod", "fraud")["spec"]["predictor"]["containers"]
    assert container == {
        "name": "kserve-container",
        "image": "ghcr.io/acme/fraud:1.3.0",
        "env": [{"name": "MODEL_VERSION", "value": "1.3.0"}],
    }


def test_ready_condition_drives_the_rollout(fake: FakeKubernetes, backend: KServeBackend) -> None:
    fake.add_inference_service("ml-prod", "fraud", storage_uri="s3://old", mode="hold")
    backend.apply(TARGET, RELEASE)
    status = backend.rollout_status(TARGET, RELEASE)
    assert status.phase == Phase.progressing
    assert status.message.startswith("Ready=False (RevisionMissing: Configuration")
    fake.finish(ISVC, "ml-prod", "fraud")
    assert backend.rollout_status(TARGET, RELEASE).phase == Phase.available


def test_a_model_that_fails_to_load_fails_the_rollout_with_kserves_reason(
    fake: FakeKubernetes, backend: KServeBackend
) -> None:
    fake.add_inference_service("ml-prod", "fraud", storage_uri="s3://old", mode="stuck")
    backend.apply(TARGET, RELEASE)
    status = backend.rollout_status(TARGET, RELEASE)
    assert status.phase == Phase.failed
    assert status.message.startswith("BlockedByFailedLoad: ModelLoadFailed Revision")


def test_a_version_without_what_the_predictor_needs_is_refused_before_patching(
    fake: FakeKubernetes, backend: KServeBackend
) -> None:
    fake.add_inference_service("ml-prod", "fraud", storage_uri="s3://old")
    no_artifact = Release(
        model="fraud", version="1.3.0", image="img", artifact_uri="", deployment_id=9
    )
    with pytest.raises(
        BackendUnavailable, match="uses predictor.model, which needs an artifact_uri"
    ):
        backend.apply(TARGET, no_artifact)
    assert fake.patches() == []


def test_missing_inference_service(fake: FakeKubernetes, backend: KServeBackend) -> None:
    assert backend.running(TARGET) is None
    with pytest.raises(
        BackendUnavailable, match='inferenceservices.serving.kserve.io "fraud" not found'
    ):
        backend.apply(TARGET, RELEASE)


def test_a_stale_failed_load_of_the_previous_spec_does_not_fail_the_next_rollout(
    fake: FakeKubernetes, backend: KServeBackend
) -> None:
    fake.add_inference_service("ml-prod", "fraud", storage_uri="s3://old", mode="stuck")
    backend.apply(TARGET, RELEASE)
    assert backend.rollout_status(TARGET, RELEASE).phase == Phase.failed  # BlockedByFailedLoad
    # A fixed version: until KServe reconciles the new generation, the status it serves still
    # describes the failed one (observedGeneration behind, BlockedByFailedLoad).
    fake.freeze_status(ISVC, "ml-prod", "fraud")
    fake.set_mode(ISVC, "ml-prod", "fraud", "ok")
    fixed = replace(
        RELEASE, version="1.3.1", artifact_uri="s3://models/fraud/1.3.1", deployment_id=10
    )
    backend.apply(TARGET, fixed)
    obj = fake.get(ISVC, "ml-prod", "fraud")
    assert obj["status"]["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
    assert obj["status"]["observedGeneration"] < obj["metadata"]["generation"]
    status = backend.rollout_status(TARGET, fixed)
    assert status == RolloutStatus(Phase.progressing, "waiting for KServe to observe the new spec")
    fake.thaw_status(ISVC, "ml-prod", "fraud")
    assert backend.rollout_status(TARGET, fixed).phase == Phase.available


def test_a_storage_uri_changed_by_hand_during_the_rollout_fails_it(
    fake: FakeKubernetes, backend: KServeBackend
) -> None:
    fake.add_inference_service("ml-prod", "fraud", storage_uri="s3://old", mode="hold")
    backend.apply(TARGET, RELEASE)
    fake.edit(
        ISVC,
        "ml-prod",
        "fraud",
        lambda obj: obj["spec"]["predictor"]["model"].update({"storageUri": "s3://hotfix"}),
    )
    fake.finish(ISVC, "ml-prod", "fraud")
    status = backend.rollout_status(TARGET, RELEASE)
    assert status.phase == Phase.failed
    assert status.message.endswith(
        "(it now runs artifact s3://hotfix instead of s3://models/fraud/1.3.0)"
    )
