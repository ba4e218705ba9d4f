"""A demo dcgm-exporter: DCGM-shaped GPU series for the simulated clusters.

Each cluster in the config gets `gpus` GPUs (4 per node). Every version the deployment history
says is active gets one GPU, held by a pod named after the environment's target, the way a
Kubernetes Deployment names its pods (`fraud-detector-5f9c7d6b8-x2x7q`); the pod name changes
when the version does. One version keeps its GPU at ~2% (the idle GPU the hardware page should
flag); the other GPUs are free. Readings follow a daily load curve with noise; power, memory and
temperature follow utilisation; the energy counter integrates power over wall-clock time.

This is demo data only: the scrape and attribution code reads it exactly as it reads NVIDIA's
dcgm-exporter, with no special case.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import ClusterConfig, Settings
from modeldeck.core.environments.models import Environment
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts.models import Deployment, DeploymentState

GPUS_PER_NODE = 4
IDLE_MODEL = "search-ranker"
LABELS = [
    "gpu",
    "UUID",
    "device",
    "modelName",
    "Hostname",
    "DCGM_FI_DRIVER_VERSION",
    "cluster",
    "namespace",
    "pod",
    "container",
]
DRIVER = "550.54.15"


@dataclass(frozen=True)
class Spec:
    """What DCGM reports for a GPU model: full name, memory, idle and maximum power."""

    name: str
    memory_mib: float
    idle_watts: float
    max_watts: float


SPECS = {
    "A100": Spec("NVIDIA A100-SXM4-80GB", 81920, 55, 400),
    "H100": Spec("NVIDIA H100 80GB HBM3", 81559, 70, 700),
    "L4": Spec("NVIDIA L4", 23034, 16, 72),
    "T4": Spec("Tesla T4", 15360, 10, 70),
}


@dataclass(frozen=True)
class Gpu:
    cluster: str
    index: int
    spec: Spec
    namespace: str = ""
    pod: str = ""
    model: str = ""
    idle: bool = False

    @property
    def uuid(self) -> str:
        digest = hashlib.sha1(f"{self.cluster}/{self.index}".encode()).hexdigest()
        return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"

    @property
    def node(self) -> str:
        return f"{self.cluster}-node-{self.index // GPUS_PER_NODE}"

    def labels(self) -> list[str]:
        return [
            str(self.index % GPUS_PER_NODE),
            self.uuid,
            f"nvidia{self.index % GPUS_PER_NODE}",
            self.spec.name,
            self.node,
            DRIVER,
            self.cluster,
            self.namespace,
            self.pod,
            "model" if self.pod else "",
        ]

    def utilisation(self, now: float) -> float:
        """Percent, a daily curve (peak mid-afternoon UTC) plus per-minute noise."""
        noise = random.Random(f"{self.uuid}/{int(now // 60)}")
        if not self.pod:
            return 0.0
        if self.idle:
            return round(max(0.0, 2.0 + noise.uniform(-1, 1)), 1)
        base = 35 + int(hashlib.sha1(self.model.encode()).hexdigest(), 16) % 45
        day = math.sin(2 * math.pi * ((now / 3600) % 24 - 9) / 24)
        return round(min(100.0, max(0.0, base * (0.8 + 0.25 * day) + noise.uniform(-5, 5))), 1)


def _pod_name(target: str, version: str, salt: str) -> str:
    """`{target}-{pod-template-hash}-{suffix}`: a new version gives new pod names."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"

    def word(text: str, n: int) -> str:
        digest = int(hashlib.sha1(text.encode()).hexdigest(), 16)
        return "".join(alphabet[(digest >> (5 * i)) % len(alphabet)] for i in range(n))

    return f"{target}-{word(version, 10)}-{word(salt, 5)}"


def world(
    session: Session, clusters: list[ClusterConfig], idle_model: str = IDLE_MODEL
) -> list[Gpu]:
    """GPUs of every cluster, one per active deployment, the rest free."""
    rows = session.exec(
        select(Environment, Model.name, ModelVersion.version)
        .join(Deployment, col(Deployment.environment_id) == Environment.id)
        .join(Model, col(Model.id) == Deployment.model_id)
        .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
        .where(Deployment.state == DeploymentState.active, Environment.active == True)  # noqa: E712
        .order_by(Environment.name, Model.name)
    ).all()
    idle_at = next((i for i, r in enumerate(rows) if r[1] == idle_model), len(rows) - 1)
    out: list[Gpu] = []
    for cluster in clusters:
        spec = SPECS.get(cluster.gpu_model, SPECS["A100"])
        held = [(i, r) for i, r in enumerate(rows) if r[0].cluster == cluster.name]
        for index in range(cluster.gpus):
            if index < len(held):
                i, (env, model, version) = held[index]
                out.append(
                    Gpu(
                        cluster.name,
                        index,
                        spec,
                        env.namespace,
                        _pod_name(env.target_name(model), version, f"{env.name}/{index}"),
                        model,
                        idle=i == idle_at,
                    )
                )
            else:
                out.append(Gpu(cluster.name, index, spec))
    return out


class DemoGpuCollector:
    """prometheus-client collector; re-reads the deployment history every few seconds."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Clock = utcnow,
        idle_model: str = IDLE_MODEL,
        refresh_seconds: float = 5.0,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.idle_model = idle_model
        self.refresh_seconds = refresh_seconds
        self._gpus: list[Gpu] = []
        self._loaded = -math.inf
        self._energy: dict[str, tuple[float, float]] = {}  # uuid -> (at, millijoules)
        self._lock = threading.Lock()

    def gpus(self) -> list[Gpu]:
        if time.monotonic() - self._loaded > self.refresh_seconds:
            with Session(self.engine) as session:
                self._gpus = world(session, self.settings.clusters, self.idle_model)
            self._loaded = time.monotonic()
        return self._gpus

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._families(self.clock().timestamp())

    def _families(self, now: float) -> Iterable[Metric]:
        families = {
            key: GaugeMetricFamily(name, doc, labels=LABELS)
            for key, name, doc in (
                ("util", "DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
                (
                    "engine",
                    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                    "Ratio of time the graphics engine is active.",
                ),
                ("used", "DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
                ("free", "DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."),
                ("power", "DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
                ("temp", "DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."),
                (
                    "energy",
                    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                    "Total energy consumption since boot (in mJ).",
                ),
            )
        }
        for gpu in self.gpus():
            util = gpu.utilisation(now)
            spec = gpu.spec
            share = 0.0 if not gpu.pod else 0.08 if gpu.idle else 0.35 + (util / 100) * 0.4
            used = round(spec.memory_mib * share)
            power = round(spec.idle_watts + (spec.max_watts - spec.idle_watts) * util / 100, 3)
            labels = gpu.labels()
            for key, value in (
                ("util", util),
                ("engine", round(util / 100 * 0.95, 4)),
                ("used", used),
                ("free", spec.memory_mib - used),
                ("power", power),
                ("temp", round(30 + util * 0.45, 1)),
                ("energy", self._integrate(gpu, power, now)),
            ):
                families[key].add_metric(labels, value)
        return families.values()

    def _integrate(self, gpu: Gpu, watts: float, now: float) -> float:
        at, total = self._energy.get(gpu.uuid, (now, float(int(gpu.uuid[4:12], 16) * 1000)))
        total += watts * max(0.0, now - at) * 1000
        self._energy[gpu.uuid] = (now, total)
        return round(total)


def serve(
    settings: Settings,
    engine: Engine,
    *,
    host: str = "127.0.0.1",
    port: int = 9400,
    clock: Clock = utcnow,
    idle_model: str = IDLE_MODEL,
    refresh_seconds: float = 5.0,
) -> tuple[WSGIServer, threading.Thread]:
    """Serve /metrics in a background thread; stop with `server.shutdown()`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        DemoGpuCollector(
            settings, engine, clock=clock, idle_model=idle_model, refresh_seconds=refresh_seconds
        )
    )
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread
