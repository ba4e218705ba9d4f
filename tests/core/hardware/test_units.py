"""The pure parts: query windows, pricing, percentiles, attribution intervals, error parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlmodel import Session, select

from modeldeck.core.environments.models import Environment
from modeldeck.core.hardware.aggregate import _deltas, percentile
from modeldeck.core.hardware.attribution import Attributor, Owner, Reason
from modeldeck.core.hardware.collect import SeriesKey
from modeldeck.core.hardware.models import Attribution
from modeldeck.core.hardware.pricing import price_key
from modeldeck.core.hardware.prom import _api_error, windows
from modeldeck.core.rollouts.models import Deployment, DeploymentState
from tests.core.hardware.world import _version

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hours", "step", "max_points"),
    [
        (48, 60, 11_000),
        (48, 60, 100),
        (24 * 400, 60, 11_000),
        (1, 1, 7),
        (0, 60, 10),
    ],
)
def test_windows_cover_the_range_once_within_the_bound(
    hours: int, step: int, max_points: int
) -> None:
    end = T0 + timedelta(hours=hours)
    parts = list(windows(T0, end, step, max_points))
    points = [int((hi - lo).total_seconds()) // step + 1 for lo, hi in parts]
    assert max(points) <= max_points
    assert sum(points) == int((end - T0).total_seconds()) // step + 1  # every point, once
    assert parts[0][0] == T0 and parts[-1][1] == end


@pytest.mark.parametrize(
    ("dcgm", "expected"),
    [
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100 80GB PCIe", "A100"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", None),
        ("Tesla T4", "T4"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("", None),
    ],
)
def test_dcgm_model_names_map_to_prices(dcgm: str, expected: str | None) -> None:
    prices = {"A100": 3.67, "H100": 6.98, "L4": 0.81, "T4": 0.53}
    assert price_key(dcgm, prices) == expected


def test_percentile_is_numpy_linear() -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 60, 1000):
        values = list(rng.uniform(0, 100, n))
        assert percentile(values, 95) == pytest.approx(float(np.percentile(values, 95)))
    assert percentile([], 95) == 0.0


def test_energy_deltas_treat_a_drop_as_a_reset() -> None:
    counter = {0: 1000.0, 60: 4600.0, 120: 800.0, 180: 4400.0}  # restart before 120
    assert _deltas(counter) == pytest.approx(
        {60: 3600 / 3.6e6, 120: 800 / 3.6e6, 180: 3600 / 3.6e6}
    )


def test_prometheus_error_bodies_are_read() -> None:
    status, message = _api_error(
        'HTTP Status Code 400 (b\'{"status":"error","errorType":"bad_data",'
        '"error":"exceeded maximum resolution of 11,000 points per timeseries"}\')'
    )
    assert status == 400 and message.startswith("exceeded maximum resolution")
    assert _api_error("something else") == (0, "something else")


def test_a_version_rolled_back_to_nothing_stops_counting(session: Session) -> None:
    """Rolled back with no successor: after `finished_at` the pod's GPU time is unattributed
    (no_version), even though the pod keeps its name."""
    model_id, version_id = _version(session, "fraud-detector", "2.0.0")
    prod = session.exec(select(Environment).where(Environment.name == "production")).one()
    assert prod.id is not None
    session.add(
        Deployment(
            model_id=model_id,
            environment_id=prod.id,
            version_id=version_id,
            state=DeploymentState.rolled_back,
            requested_by="t",
            activated_at=T0,
            finished_at=T0 + timedelta(hours=2),
        )
    )
    session.commit()
    attributor = Attributor(session, pod_labels={})
    key = SeriesKey(
        "gpu-a100", "n1", "GPU-1", "0", "", "A100", "ml-prod", "fraud-detector-abc-1", "model"
    )
    ts = int(T0.timestamp())
    assert attributor.owner(key, ts - 60) is Reason.no_version
    assert attributor.owner(key, ts) == Owner(model_id, version_id, prod.id, Attribution.pod_name)
    assert attributor.owner(key, ts + 2 * 3600 - 60) != Reason.no_version
    assert attributor.owner(key, ts + 2 * 3600) is Reason.no_version
    elsewhere = SeriesKey(
        "gpu-a100", "n1", "GPU-1", "0", "", "A100", "other-ns", "fraud-detector-abc-1", "model"
    )
    assert attributor.owner(elsewhere, ts) is Reason.no_environment
    free = SeriesKey("gpu-a100", "n1", "GPU-1", "0", "", "A100", "", "", "")
    assert attributor.owner(free, ts) is Reason.free


def test_the_longest_target_wins(session: Session) -> None:
    """`fraud` and `fraud-detector` are both models: a `fraud-detector-…` pod is the latter."""
    short_model, short_version = _version(session, "fraud", "1.0.0")
    long_model, long_version = _version(session, "fraud-detector", "1.0.0")
    prod = session.exec(select(Environment).where(Environment.name == "production")).one()
    assert prod.id is not None
    for model_id, version_id in ((short_model, short_version), (long_model, long_version)):
        session.add(
            Deployment(
                model_id=model_id,
                environment_id=prod.id,
                version_id=version_id,
                state=DeploymentState.active,
                requested_by="t",
                activated_at=T0,
            )
        )
    session.commit()
    attributor = Attributor(session, pod_labels={})
    ts = int(T0.timestamp()) + 60
    for pod, model_id in (("fraud-detector-7d9-x", long_model), ("fraud-5c8-y", short_model)):
        owner = attributor.owner(
            SeriesKey("gpu-a100", "", "G", "0", "", "", "ml-prod", pod, ""), ts
        )
        assert isinstance(owner, Owner) and owner.model_id == model_id


def _active(session: Session, model: str, version: str, env: str = "production") -> int:
    model_id, version_id = _version(session, model, version)
    place = session.exec(select(Environment).where(Environment.name == env)).one()
    assert place.id is not None
    session.add(
        Deployment(
            model_id=model_id,
            environment_id=place.id,
            version_id=version_id,
            state=DeploymentState.active,
            requested_by="t",
            activated_at=T0,
        )
    )
    session.commit()
    return version_id


def test_pod_labels_match_the_sanitised_value_the_k8s_backend_writes(session: Session) -> None:
    """Kubernetes label values allow no '+': the backend labels version 1.0.0+cu121 as
    `1.0.0_cu121` (clusters.k8s.label_value), and that is what kube_pod_labels reports."""
    from modeldeck.core.clusters.k8s import label_value

    version_id = _active(session, "churn-predictor", "1.0.0+cu121")
    assert label_value("1.0.0+cu121") == "1.0.0_cu121"
    labels = {("gpu-a100", "ml-prod", "batch-scorer-1"): ("churn-predictor", "1.0.0_cu121")}
    key = SeriesKey("gpu-a100", "n1", "G", "0", "", "A100", "ml-prod", "batch-scorer-1", "")
    owner = Attributor(session, pod_labels=labels).owner(key, int(T0.timestamp()) + 60)
    assert isinstance(owner, Owner) and owner.version_id == version_id
    assert owner.method is Attribution.pod_labels


def test_two_versions_with_one_label_value_are_not_guessed(session: Session) -> None:
    """ "3+x_y" and "3_x+y" are both labelled "3_x_y": ambiguous, so not attributed by labels;
    a version registered under the label value itself is matched exactly."""
    _active(session, "churn-predictor", "1.0.0+a")
    _version(session, "churn-predictor", "1.0.0_a")
    _version(session, "churn-predictor", "3+x_y")
    _version(session, "churn-predictor", "3_x+y")
    attributor = Attributor(
        session,
        pod_labels={
            ("gpu-a100", "ml-prod", "p-1"): ("churn-predictor", "1.0.0_a"),
            ("gpu-a100", "ml-prod", "p-2"): ("churn-predictor", "3_x_y"),
        },
    )
    ts = int(T0.timestamp()) + 60
    exact = attributor.owner(SeriesKey("gpu-a100", "", "G", "0", "", "", "ml-prod", "p-1", ""), ts)
    assert isinstance(exact, Owner)
    assert attributor.version_names[exact.version_id] == "1.0.0_a"
    ambiguous = SeriesKey("gpu-a100", "", "G", "1", "", "", "ml-prod", "p-2", "")
    assert attributor.owner(ambiguous, ts) is Reason.unknown_labels


def test_labels_that_resolve_to_nothing_fall_back_to_the_pod_name(session: Session) -> None:
    version_id = _active(session, "fraud-detector", "1.0.0")
    labels = {("gpu-a100", "ml-prod", "fraud-detector-7d9-x"): ("fraud-detector", "9.9.9")}
    key = SeriesKey("gpu-a100", "", "G", "0", "", "", "ml-prod", "fraud-detector-7d9-x", "")
    owner = Attributor(session, pod_labels=labels).owner(key, int(T0.timestamp()) + 60)
    assert owner == Owner(owner.model_id, version_id, owner.environment_id, Attribution.pod_name)
