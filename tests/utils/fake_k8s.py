"""A fake Kubernetes API server on 127.0.0.1 for the real `kubernetes` client.

It serves the two resources modeldeck uses, over real HTTP, as the API server does:

  /apis/apps/v1/namespaces/{ns}/deployments/{name}                      GET, PATCH
  /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}  GET, PATCH

PATCH understands strategic merge (Deployments only; custom resources answer 415 like the real
server) and JSON merge patch. A spec change bumps metadata.generation and starts a rollout whose
status the fake derives on every read from the object's `mode`:

  ok     finishes after `seconds` (0 = on the next read)
  hold   progresses until `finish()` is called
  stuck  never becomes available; after `deadline` seconds the Deployment reports
         ProgressDeadlineExceeded (an InferenceService reports BlockedByFailedLoad)

Faults: `down()`/`up()` (connection refused), `hang_up()` (connections closed unanswered, each
attempt recorded), `fail_next(n, status)`, `slow_next(n, seconds)` (optionally for one `method`;
`after_apply=True` does the work first, as an API server whose answer was lost), `delete()`
and `edit()` (by hand), `malform()` (answers the client cannot read, e.g. a container without a
name), `freeze_status()` (stale status: the controller has not looked yet). `tls=` serves HTTPS.
Every request is recorded.
"""

from __future__ import annotations

import copy
import json
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.utils import k8s_objects as objects
from tests.utils.servers import free_port

Obj = dict[str, Any]
Change = Callable[[Obj], None]
DEPLOYMENT, ISVC = "deployments", "inferenceservices"
_PATH = re.compile(
    r"^/apis/(?P<group>apps/v1|serving\.kserve\.io/v1beta1)/namespaces/(?P<ns>[^/]+)/"
    r"(?P<plural>deployments|inferenceservices)/(?P<name>[^/?]+)$"
)
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str
    body: Any


@dataclass
class _Item:
    body: Obj
    mode: str = "ok"
    seconds: float = 0.0
    deadline: float = 0.0
    changed_at: float | None = None  # None: never changed since created (steady)
    finished: bool = False
    frozen_status: Obj | None = None
    malform: Change | None = None  # applied to what is served, not to what is stored


@dataclass
class _Fault:
    status: int | None = None  # answer with this error…
    seconds: float = 0.0  # …or this late
    method: str | None = None  # only for requests with this method (None: any)
    after_apply: bool = False  # do the work first, then misbehave


class FakeKubernetes:
    """The server; use as a context manager (`with FakeKubernetes() as fake:`)."""

    def __init__(self, token: str = "test-token", tls: ssl.SSLContext | None = None) -> None:
        self.token = token
        self.port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.requests: list[Recorded] = []
        self.hanging_up = False
        self._items: dict[tuple[str, str, str], _Item] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeKubernetes:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        """Listen (again) on the same port."""
        handler = type("Handler", (_Handler,), {"server_fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        """Stop listening: clients get 'connection refused', as with an API server outage."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread:
                self._thread.join(timeout=5)
            self._server = None

    # faults -----------------------------------------------------------------------------
    def hang_up(self, on: bool = True) -> None:
        self.hanging_up = on  # read by the handler before anything else

    def malform(self, plural: str, namespace: str, name: str, change: Change | None) -> None:
        """Serve the object (GET and PATCH answers) through `change`; None serves it whole."""
        with self._lock:
            self._items[(plural, namespace, name)].malform = change

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        method: str | None = None,
        after_apply: bool = False,
    ) -> None:
        with self._lock:
            self._faults += [_Fault(status, 0, method, after_apply) for _ in range(count)]

    def slow_next(
        self, count: int, seconds: float, *, method: str | None = None, after_apply: bool = False
    ) -> None:
        with self._lock:
            self._faults += [_Fault(None, seconds, method, after_apply) for _ in range(count)]

    # objects ----------------------------------------------------------------------------
    def add_deployment(
        self,
        namespace: str,
        name: str,
        *,
        image: str,
        replicas: int = 2,
        containers: list[Obj] | None = None,
        version: str | None = None,
        mode: str = "ok",
        seconds: float = 0.0,
        deadline: float = 0.0,
    ) -> None:
        body = objects.deployment(
            namespace, name, image=image, replicas=replicas, containers=containers, version=version
        )
        with self._lock:
            self._items[(DEPLOYMENT, namespace, name)] = _Item(body, mode, seconds, deadline)

    def add_inference_service(
        self,
        namespace: str,
        name: str,
        *,
        storage_uri: str | None = None,
        image: str | None = None,
        mode: str = "ok",
        seconds: float = 0.0,
        deadline: float = 0.0,
    ) -> None:
        body = objects.inference_service(namespace, name, storage_uri=storage_uri, image=image)
        with self._lock:
            self._items[(ISVC, namespace, name)] = _Item(body, mode, seconds, deadline)

    def set_mode(
        self,
        plural: str,
        namespace: str,
        name: str,
        mode: str,
        seconds: float = 0,
        deadline: float = 0,
    ) -> None:
        with self._lock:
            item = self._items[(plural, namespace, name)]
            item.mode, item.seconds, item.deadline = mode, seconds, deadline

    def finish(self, plural: str, namespace: str, name: str) -> None:
        """Let a `hold` rollout complete."""
        with self._lock:
            self._items[(plural, namespace, name)].finished = True

    def edit(self, plural: str, namespace: str, name: str, change: Change) -> None:
        """Change an object by hand (as `kubectl edit` would); a spec change rolls out."""
        with self._lock:
            item = self._items[(plural, namespace, name)]
            self._store(item, change)

    def freeze_status(self, plural: str, namespace: str, name: str) -> None:
        """Serve the status as it is now until `thaw_status`, whatever the spec becomes."""
        with self._lock:
            item = self._items[(plural, namespace, name)]
            item.frozen_status = self._render(plural, item)["status"]

    def thaw_status(self, plural: str, namespace: str, name: str) -> None:
        with self._lock:
            self._items[(plural, namespace, name)].frozen_status = None

    def delete(self, plural: str, namespace: str, name: str) -> None:
        with self._lock:
            del self._items[(plural, namespace, name)]

    def get(self, plural: str, namespace: str, name: str) -> Obj:
        """The object with its derived status, as a GET would return it."""
        with self._lock:
            return self._render(plural, self._items[(plural, namespace, name)])

    def patches(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PATCH"]

    # internals --------------------------------------------------------------------------
    def _store(self, item: _Item, change: Change) -> None:
        before = json.dumps(item.body.get("spec"), sort_keys=True)
        change(item.body)
        meta = item.body["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        if json.dumps(item.body.get("spec"), sort_keys=True) != before:
            meta["generation"] += 1
            item.changed_at = time.monotonic()
            item.finished = False

    def _render(self, plural: str, item: _Item) -> Obj:
        body = copy.deepcopy(item.body)
        if item.frozen_status is not None:
            body["status"] = copy.deepcopy(item.frozen_status)
            return body
        phase = self._phase(item)
        body["status"] = (
            objects.deployment_status(body, phase)
            if plural == DEPLOYMENT
            else objects.isvc_status(body, phase)
        )
        return body

    def _answer(self, plural: str, item: _Item) -> tuple[int, Obj]:
        body = self._render(plural, item)
        if item.malform is not None:
            item.malform(body)
        return 200, body

    def _phase(self, item: _Item) -> str:
        if item.changed_at is None or item.finished:
            return "done"
        elapsed = time.monotonic() - item.changed_at
        if item.mode == "ok":
            if elapsed >= item.seconds:
                return "done"
            return "lagging" if elapsed < item.seconds * 0.1 else "progressing"
        if item.mode == "stuck":
            return "deadline" if elapsed >= item.deadline else "progressing"
        return "progressing"

    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Obj]:
        content_type = headers.get("content-type", "").split(";")[0].strip()
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(Recorded(method, path, content_type, body))
            if self.hanging_up:
                return 0, {}
            scheme, _, token = headers.get("authorization", "").partition(" ")
            # The scheme is case-insensitive (RFC 9110); in-cluster config sends "bearer".
            if scheme.lower() != "bearer" or token != self.token:
                return 401, objects.status(401, "Unauthorized", "Unauthorized")
            fault = next((f for f in self._faults if f.method in (None, method)), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is None or not fault.after_apply:
            if fault is not None and fault.status is not None:
                return fault.status, objects.internal_error(fault.status)
            if fault is not None and fault.seconds:
                time.sleep(fault.seconds)
            return self._serve(method, path, content_type, body)
        answer = self._serve(method, path, content_type, body)
        if fault.seconds:
            time.sleep(fault.seconds)
        if fault.status is not None:
            return fault.status, objects.internal_error(fault.status)
        return answer

    def _serve(self, method: str, path: str, content_type: str, body: Any) -> tuple[int, Obj]:
        match = _PATH.match(path.split("?")[0])
        if match is None:
            return 404, objects.status(
                404, "NotFound", "the server could not find the requested resource"
            )
        plural, ns, name = match["plural"], match["ns"], match["name"]
        with self._lock:
            item = self._items.get((plural, ns, name))
            if item is None:
                group = "apps" if plural == DEPLOYMENT else "serving.kserve.io"
                return 404, objects.status(404, "NotFound", f'{plural}.{group} "{name}" not found')
            if method == "GET":
                return self._answer(plural, item)
            if method != "PATCH":
                return 405, objects.status(405, "MethodNotAllowed", f"{method} is not supported")
            return self._patch(plural, item, content_type, body)

    def _patch(self, plural: str, item: _Item, content_type: str, body: Any) -> tuple[int, Obj]:
        if content_type == SMP and plural == DEPLOYMENT:
            apply = objects.strategic_merge
        elif content_type == MERGE:
            apply = objects.merge_patch
        else:
            return 415, objects.status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted "
                f"media types include: application/json-patch+json, {MERGE}"
                + (f", {SMP}" if plural == DEPLOYMENT else ""),
            )
        if not isinstance(body, dict):
            return 400, objects.status(400, "BadRequest", "patch body must be a JSON object")
        candidate = apply(copy.deepcopy(item.body), body)
        for container in objects.containers(candidate):
            if not container.get("name") or not container.get("image"):
                return 422, objects.status(
                    422, "Invalid", "spec.template.spec.containers[0].image: Required value"
                )

        def replace(obj: Obj) -> None:
            obj.clear()
            obj.update(candidate)

        self._store(item, replace)
        return self._answer(plural, item)


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeKubernetes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        code, body = self.server_fake.handle(self.command, self.path, headers, raw)
        if code == 0:  # hang up: no status line, the client sees the peer vanish
            self.close_connection = True
            return
        data = json.dumps(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (slow-response tests)

    do_GET = _serve  # noqa: N815 - http.server's naming
    do_PATCH = _serve  # noqa: N815


def write_kubeconfig(
    path: Path, servers: dict[str, FakeKubernetes], current: str | None = None
) -> Path:
    """A kubeconfig with one context per fake server (context name = cluster name)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": s.url}} for n, s in servers.items()],
        "users": [{"name": f"{n}-user", "user": {"token": s.token}} for n, s in servers.items()],
        "contexts": [
            {"name": n, "context": {"cluster": n, "user": f"{n}-user", "namespace": "default"}}
            for n in servers
        ],
        "current-context": current or next(iter(servers)),
    }
    path.write_text(yaml.safe_dump(config))
    return path
