"""A hand-checkable GPU world: 48 h of DCGM-shaped history and the deployment history behind it.

Every value is a simple function of the minute `m` (0..2879) so tests can recompute the
expected GPU-hours, utilisation and energy by hand. Samples sit at second 30 of each minute,
away from the 60 s window edges.

GPU          cluster   pod (namespace)                       what it tests
GPU-A100-0   gpu-a100  fraud-detector-6d4cf-abcde (ml-prod)  pod-name attribution; v2 rolled back
                                                             at +40h20m; energy counter reset
GPU-A100-1   gpu-a100  batch-scorer-77f-q (ml-prod)          kube_pod_labels attribution; 90 °C
GPU-A100-2   gpu-a100  eta-regressor-4b2-zz (ml-prod)        idle (~2%); scraped by two jobs
GPU-A100-3   gpu-a100  (no pod)                              free GPU
GPU-L4-0     gpu-l4    fraud-detector-5c9-aa + churn-...-bb  time-sliced by two pods; memory 97.8%
GPU-L4-1     (none)    search-ranker-9f-1 (ml-staging)       no cluster/modelName label; no version
GPU-L4-2     gpu-l4    mystery-pod-1 (ml-staging)            matches no target
GPU-L4-3     gpu-l4    (no pod)                              stuck at 0
(no UUID)    gpu-l4    -                                     unidentifiable, dropped
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.environments.models import Environment
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate
from modeldeck.core.rollouts.models import Deployment, DeploymentKind, DeploymentState
from tests.utils.prometheus import Series

HOURS = 48
MINUTES = HOURS * 60
RESET_MINUTE = 1200  # the energy counter of GPU-A100-0 restarts from 0 here
V2_START = 30 * 60  # fraud-detector 2.0.0 active in production from minute 1800…
V2_END = 40 * 60 + 20  # …until it is rolled back at minute 2420
HOT_HOUR = 5  # GPU-A100-1 runs at 90 °C during this hour

A100 = "NVIDIA A100-SXM4-80GB"
L4 = "NVIDIA L4"
ACTOR = Actor(name="tester", role=Role.admin, via="cli")


def base_time() -> datetime:
    """Start of the history: 48 whole hours ending at the last full hour."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=HOURS)


def util_a(m: int) -> float:
    return 40.0 + (m * 7) % 50


def power_a(m: int) -> float:
    return 150.0 + 2 * util_a(m)


def util_idle(m: int) -> float:
    return 1.0 + m % 3


def energy_a() -> list[float]:
    """Cumulative millijoules of GPU-A100-0 with a reset (exporter restart) at RESET_MINUTE."""
    out, total = [], 0.0
    for m in range(MINUTES):
        total = 0.0 if m == RESET_MINUTE else total
        total += power_a(m) * 60 * 1000 if m > 0 else 5e9  # starts from a large boot value
        out.append(total)
    return out


def _labels(
    uuid: str | None,
    gpu: str | None,
    model: str | None,
    cluster: str | None,
    node: str,
    namespace: str = "",
    pod: str = "",
    job: str = "dcgm-exporter",
) -> dict[str, str]:
    labels = {
        "Hostname": node,
        "device": f"nvidia{gpu or 0}",
        "namespace": namespace,
        "pod": pod,
        "container": "model" if pod else "",
        "job": job,
        "instance": f"{node}:9400",
        "DCGM_FI_DRIVER_VERSION": "550.54.15",
    }
    for key, value in (("UUID", uuid), ("gpu", gpu), ("modelName", model), ("cluster", cluster)):
        if value is not None:
            labels[key] = value
    return {k: v for k, v in labels.items() if v != ""}


def _gpu(
    t0: float,
    labels: dict[str, str],
    *,
    util: object,
    power: object,
    fb_used: object,
    fb_total: float,
    temp: object,
    energy: list[float] | None = None,
) -> list[Series]:
    """The DCGM series of one GPU as one pod sees it; values are callables of the minute."""

    def at(fn: object, m: int) -> float:
        return float(fn(m)) if callable(fn) else float(fn)  # type: ignore[arg-type]

    out = []
    for name, fn in (
        ("DCGM_FI_DEV_GPU_UTIL", util),
        ("DCGM_FI_DEV_POWER_USAGE", power),
        ("DCGM_FI_DEV_FB_USED", fb_used),
        ("DCGM_FI_DEV_GPU_TEMP", temp),
    ):
        out.append(Series(name, labels, [(t0 + 60 * m + 30, at(fn, m)) for m in range(MINUTES)]))
    out.append(
        Series(
            "DCGM_FI_DEV_FB_FREE",
            labels,
            [(t0 + 60 * m + 30, fb_total - at(fb_used, m)) for m in range(MINUTES)],
        )
    )
    if energy is not None:
        out.append(
            Series(
                "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                labels,
                [(t0 + 60 * m + 30, e) for m, e in enumerate(energy)],
            )
        )
    return out


def history(t0: datetime) -> list[Series]:
    """All series of the world, ready for promtool."""
    ts = t0.timestamp()
    out: list[Series] = []
    out += _gpu(
        ts,
        _labels(
            "GPU-A100-0", "0", A100, "gpu-a100", "a100-n1", "ml-prod", "fraud-detector-6d4cf-abcde"
        ),
        util=util_a,
        power=power_a,
        fb_used=lambda m: 30000 + m % 100,
        fb_total=81920,
        temp=lambda m: 60 + util_a(m) % 10,
        energy=energy_a(),
    )
    b = _labels("GPU-A100-1", "1", A100, "gpu-a100", "a100-n1", "ml-prod", "batch-scorer-77f-q")
    out += _gpu(
        ts,
        b,
        util=70,
        power=250,
        fb_used=40000,
        fb_total=81920,
        temp=lambda m: 90 if m // 60 == HOT_HOUR else 65,
    )
    out.append(
        Series(
            "kube_pod_labels",
            {
                "namespace": "ml-prod",
                "pod": "batch-scorer-77f-q",
                "cluster": "gpu-a100",
                "label_modeldeck_io_model": "churn-predictor",
                "label_modeldeck_io_version": "2.0.0",
                "job": "kube-state-metrics",
            },
            [(ts + 60 * m + 15, 1.0) for m in range(MINUTES)],
        )
    )
    for job in ("dcgm-exporter", "dcgm-exporter-servicemonitor"):  # scraped twice
        out += _gpu(
            ts,
            _labels(
                "GPU-A100-2",
                "2",
                A100,
                "gpu-a100",
                "a100-n2",
                "ml-prod",
                "eta-regressor-4b2-zz",
                job=job,
            ),
            util=util_idle,
            power=60,
            fb_used=2000,
            fb_total=81920,
            temp=35,
        )
    out += _gpu(
        ts,
        _labels("GPU-A100-3", "3", A100, "gpu-a100", "a100-n2"),
        util=0,
        power=55,
        fb_used=0,
        fb_total=81920,
        temp=30,
    )
    for pod in ("fraud-detector-5c9-aa", "churn-predictor-8d1-bb"):
        out += _gpu(
            ts,
            _labels("GPU-L4-0", "0", L4, "gpu-l4", "l4-n1", "ml-staging", pod),
            util=50,
            power=60,
            fb_used=22000,
            fb_total=22500,
            temp=55,
        )
    out += _gpu(
        ts,
        _labels("GPU-L4-1", "1", None, None, "l4-n1", "ml-staging", "search-ranker-9f-1"),
        util=30,
        power=40,
        fb_used=5000,
        fb_total=22500,
        temp=45,
    )
    out += _gpu(
        ts,
        _labels("GPU-L4-2", "2", L4, "gpu-l4", "l4-n1", "ml-staging", "mystery-pod-1"),
        util=20,
        power=40,
        fb_used=4000,
        fb_total=22500,
        temp=45,
    )
    out += _gpu(
        ts,
        _labels("GPU-L4-3", "3", L4, "gpu-l4", "l4-n2"),
        util=0,
        power=0,
        fb_used=0,
        fb_total=22500,
        temp=0,
    )
    out += _gpu(
        ts,
        _labels(None, None, L4, "gpu-l4", "l4-n3"),
        util=10,
        power=30,
        fb_used=100,
        fb_total=22500,
        temp=40,
    )
    return out


def _version(session: Session, model: str, version: str) -> tuple[int, int]:
    v = registry.register_version(
        session,
        model_name=model,
        actor=ACTOR,
        data=ModelVersionCreate(version=version, image=f"img:{version}"),
        create_model_if_missing=ModelCreate(name=model),
    )
    row = registry.get_version(session, registry.get_model(session, model), v.version)
    assert row.id is not None
    return row.model_id, row.id


def seed(session: Session, t0: datetime) -> dict[str, tuple[int, int]]:
    """Registry + deployment history; returns {"model@version": (model_id, version_id)}."""
    ids = {
        f"{m}@{v}": _version(session, m, v)
        for m, v in (
            ("fraud-detector", "1.0.0"),
            ("fraud-detector", "2.0.0"),
            ("churn-predictor", "2.0.0"),
            ("eta-regressor", "1.0.0"),
            ("search-ranker", "3.1.0"),
        )
    }
    envs = {e.name: e.id for e in session.exec(select(Environment)).all()}
    minute = timedelta(minutes=1)

    def deploy(
        key: str,
        env: str,
        start: datetime,
        end: datetime | None,
        state: DeploymentState,
        kind: DeploymentKind = DeploymentKind.promote,
    ) -> None:
        model_id, version_id = ids[key]
        session.add(
            Deployment(
                model_id=model_id,
                environment_id=envs[env],
                version_id=version_id,
                kind=kind,
                state=state,
                requested_by="tester",
                started_at=start,
                activated_at=start,
                finished_at=end,
            )
        )
        session.flush()

    deploy(
        "fraud-detector@1.0.0",
        "production",
        t0 - timedelta(days=10),
        t0 + V2_START * minute,
        DeploymentState.superseded,
    )
    deploy(
        "fraud-detector@2.0.0",
        "production",
        t0 + V2_START * minute,
        t0 + V2_END * minute,
        DeploymentState.rolled_back,
    )
    deploy(
        "fraud-detector@1.0.0",
        "production",
        t0 + V2_END * minute,
        None,
        DeploymentState.active,
        DeploymentKind.rollback,
    )
    deploy(
        "churn-predictor@2.0.0", "production", t0 - timedelta(days=10), None, DeploymentState.active
    )
    deploy(
        "eta-regressor@1.0.0", "production", t0 - timedelta(days=3), None, DeploymentState.active
    )
    deploy("fraud-detector@2.0.0", "staging", t0 - timedelta(days=5), None, DeploymentState.active)
    deploy("churn-predictor@2.0.0", "staging", t0 - timedelta(days=5), None, DeploymentState.active)
    session.commit()
    return ids
