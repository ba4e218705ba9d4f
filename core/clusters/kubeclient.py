"""Kubernetes connections (one per configured cluster/context, shared) and error translation.

Every call goes through `call`, which turns the client's exceptions into
`BackendUnavailable` with the API server's own message, so a promote that cannot reach the
cluster fails with a reason a person can act on. That includes an answer the client cannot
turn into its typed object (a Deployment whose container has no name): the client raises
ValueError/TypeError there, which would otherwise escape as a crash.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader
from urllib3.util.retry import Retry

from modeldeck.core.clusters.backend import ClusterUnreachable, TargetMissing
from modeldeck.core.config import ClusterConfig
from modeldeck.core.errors import BackendUnavailable

T = TypeVar("T")
# Where Kubernetes mounts a pod's service account (token, ca.crt); tests pass their own folder.
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def api_client(cluster: ClusterConfig, *, service_account: Path = SERVICE_ACCOUNT) -> k8s.ApiClient:
    """An ApiClient for this cluster: in-cluster service account (KUBERNETES_SERVICE_HOST/PORT
    and the token and CA in `service_account`), or its kubeconfig context."""
    configuration = k8s.Configuration()
    try:
        if cluster.in_cluster:
            # The library's own loader, as load_incluster_config() runs it, with the folder
            # explicit; it re-reads the token (projected tokens rotate) once a minute.
            InClusterConfigLoader(
                token_filename=str(service_account / "token"),
                cert_filename=str(service_account / "ca.crt"),
            ).load_and_set(configuration)
        else:
            k8s_config.load_kube_config(
                config_file=cluster.kubeconfig,
                context=cluster.context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError) as exc:
        where = (
            "in-cluster service account"
            if cluster.in_cluster
            else (
                f"kubeconfig {cluster.kubeconfig or '~/.kube/config'}"
                + (f" context {cluster.context!r}" if cluster.context else "")
            )
        )
        raise BackendUnavailable(
            f"cluster {cluster.name}: cannot load {where}: {exc}",
            hint="check clusters[].kubeconfig / context in modeldeck.yaml",
        ) from exc
    # Retry connecting (a restarting API server), never a request the server may have seen.
    configuration.retries = Retry(total=2, connect=2, read=0, status=0, other=0, backoff_factor=0.2)
    return k8s.ApiClient(configuration)


_CLIENTS: dict[tuple[str, bool, str | None, str | None], tuple[float | None, k8s.ApiClient]] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_client(cluster: ClusterConfig) -> k8s.ApiClient:
    """The ApiClient of this cluster, made once per process and reused, so its connection
    pool and loaded credentials serve every request; a rewritten kubeconfig gets a new one."""
    key = (cluster.name, cluster.in_cluster, cluster.kubeconfig, cluster.context)
    stamp = None if cluster.in_cluster else _modified(cluster.kubeconfig)
    with _CLIENTS_LOCK:
        cached = _CLIENTS.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        client = api_client(cluster)
        _CLIENTS[key] = (stamp, client)
        return client


def _modified(kubeconfig: str | None) -> float | None:
    try:
        return os.stat(os.path.expanduser(kubeconfig or "~/.kube/config")).st_mtime
    except OSError:
        return None


def timeout(cluster: ClusterConfig) -> tuple[float, float]:
    """(connect, read) seconds for one API request."""
    return (min(cluster.api_timeout_seconds, 5.0), cluster.api_timeout_seconds)


def call(cluster: ClusterConfig, what: str, fn: Callable[[], T]) -> T:
    """Run one API request; translate failures into BackendUnavailable (TargetMissing on 404)."""
    try:
        return fn()
    except ApiException as exc:
        message = status_message(exc)
        if exc.status == 404:
            raise TargetMissing(
                f"{what}: not found on cluster {cluster.name} ({message})",
                hint="was it deleted by hand? modeldeck changes existing objects "
                "and never creates them; check environments[].target",
            ) from exc
        if exc.status in (401, 403):
            raise BackendUnavailable(
                f"cluster {cluster.name} refused {what}: HTTP {exc.status} {message}",
                hint="check the credentials and RBAC of modeldeck's kubeconfig user",
            ) from exc
        if exc.status is not None and 400 <= exc.status < 500:
            raise BackendUnavailable(
                f"cluster {cluster.name} rejected {what}: HTTP {exc.status} {message}"
            ) from exc
        raise BackendUnavailable(
            f"cluster {cluster.name} failed {what}: HTTP {exc.status} {message}"
        ) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ClusterUnreachable(
            f"cluster {cluster.name} unreachable during {what}: "
            f"{type(reason).__name__}: {_short(str(reason))}"
        ) from exc
    except (ValueError, TypeError, LookupError, AttributeError) as exc:
        # The client could not read the answer into its typed object (pydantic's
        # ValidationError is a ValueError): an odd object on the cluster, not a modeldeck crash.
        raise BackendUnavailable(
            f"cluster {cluster.name} returned an object modeldeck cannot read during {what}: "
            f"{type(exc).__name__}: {_short(str(exc))}",
            hint="look at it with `kubectl get -o yaml`; a webhook or a hand edit may have "
            "left a field the Kubernetes API client rejects",
        ) from exc


def status_message(exc: ApiException) -> str:
    """The `message` of the Kubernetes Status object in an error body, else the HTTP reason."""
    body: Any = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            data = json.loads(body)
        except ValueError:
            return _short(body)
        if isinstance(data, dict) and data.get("message"):
            return _short(str(data["message"]))
    return str(exc.reason or "")


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
