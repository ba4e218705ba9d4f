"""A typed HTTP client of the REST API, for the bot and dashboard when they run apart from core.

    with ModeldeckClient("http://modeldeck:8000", token) as md:
        md.register_version("fraud-detector", ModelVersionCreate(version="1.4.0", image=...))
        print(md.status("fraud-detector"))

Answers are the same pydantic schemas the service layer returns (`ModelPublic`, ...), and error
answers become the core's exceptions (NotFound, Forbidden, Conflict, InvalidInput,
Unauthorized, BackendUnavailable) with the server's message, so callers handle one set of
errors whether they call core in-process or over HTTP. Domains add their methods here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from modeldeck.core import __version__
from modeldeck.core.alerts.models import AlertPublic, AlertsPublic, AlertStatus, SnoozeRequest
from modeldeck.core.audit.models import AuditEventsPublic
from modeldeck.core.auth.models import ApiTokenCreated, ApiTokenPublic, Role, TokenCreate, WhoAmI
from modeldeck.core.environments.models import EnvironmentPublic, EnvironmentsPublic
from modeldeck.core.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    ModeldeckError,
    NotFound,
    Unauthorized,
)
from modeldeck.core.registry.models import (
    ModelCreate,
    ModelPublic,
    ModelsPublic,
    ModelVersionCreate,
    ModelVersionPublic,
    ModelVersionsPublic,
)
from modeldeck.core.rollouts.models import (
    ApprovalRequest,
    Decision,
    DeploymentPublic,
    DeploymentsPublic,
    DeploymentState,
    PromoteRequest,
    RollbackRequest,
)
from modeldeck.core.rollouts.queries import StatusRow

# Not imported from api.routes: that would import every router (and evidently with the
# monitoring one) into a process that only wants to make HTTP calls.
API_PREFIX = "/api/v1"

T = TypeVar("T")
Params = Mapping[str, Any]

ERRORS: dict[int, type[ModeldeckError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    422: InvalidInput,
    502: BackendUnavailable,
    503: BackendUnavailable,
    504: BackendUnavailable,
}


def error_from_response(response: httpx.Response) -> ModeldeckError:
    """The core exception an error answer stands for, with the server's message and hint."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail: Any = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # a plain FastAPI validation answer (another server version)
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg')}" for d in detail
        )
    message = str(detail) if detail else f"HTTP {response.status_code} {response.reason_phrase}"
    hint = body.get("hint") if isinstance(body, dict) else None
    cls = ERRORS.get(response.status_code, ModeldeckError)
    error = cls(message, hint=hint if isinstance(hint, str) else None)
    error.status_code = response.status_code
    return error


def _seg(value: str) -> str:
    """One path segment, percent-encoded (a name with '/' or '?' stays one segment)."""
    return quote(value, safe="")


class ModeldeckClient:
    """Typed client of /api/v1. One connection pool; use it as a context manager or close()."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        all_headers = {"User-Agent": f"modeldeck-client/{__version__}", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=all_headers, timeout=timeout, transport=transport
        )

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ModeldeckClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; raise the core exception matching an error answer."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method, path, params=clean, json=json, content=content, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(
                f"modeldeck API at {self.base_url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"cannot reach the modeldeck API at {self.base_url}: {exc}",
                hint="is `modeldeck api` running, and is the URL right?",
            ) from exc
        if response.is_error:
            raise error_from_response(response)
        return response

    def _get(self, path: str, schema: type[T], params: Params | None = None) -> T:
        return _adapter(schema).validate_json(
            self.request("GET", API_PREFIX + path, params=params).content
        )

    def _get_list(self, path: str, item: type[T], params: Params | None = None) -> list[T]:
        adapter: TypeAdapter[list[T]] = _adapter(list[item])  # type: ignore[valid-type]
        return adapter.validate_json(self.request("GET", API_PREFIX + path, params=params).content)

    def _post(
        self,
        path: str,
        schema: type[T],
        body: BaseModel | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        data = body.model_dump(mode="json") if body is not None else None
        response = self.request("POST", API_PREFIX + path, json=data, headers=headers)
        return _adapter(schema).validate_json(response.content)

    # -- service ----------------------------------------------------------------------------

    def healthz(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/healthz").json()
        return result

    def readyz(self) -> dict[str, Any]:
        """Raises BackendUnavailable while the server's database is down."""
        result: dict[str, Any] = self.request("GET", "/readyz").json()
        return result

    # -- auth -------------------------------------------------------------------------------

    def whoami(self) -> WhoAmI:
        return self._get("/whoami", WhoAmI)

    def create_token(
        self, name: str, *, role: Role = Role.viewer, expires_in_days: int | None = None
    ) -> ApiTokenCreated:
        """Admin only. The clear token is in the answer, and nowhere else."""
        body = TokenCreate(name=name, role=role, expires_in_days=expires_in_days)
        return self._post("/tokens", ApiTokenCreated, body)

    def list_tokens(self) -> list[ApiTokenPublic]:
        return self._get_list("/tokens", ApiTokenPublic)

    def revoke_token(self, token_id: int) -> None:
        self.request("DELETE", f"{API_PREFIX}/tokens/{int(token_id)}")

    # -- registry ---------------------------------------------------------------------------

    def list_models(
        self, *, team: str | None = None, limit: int = 500, offset: int = 0
    ) -> ModelsPublic:
        return self._get("/models", ModelsPublic, {"team": team, "limit": limit, "offset": offset})

    def get_model(self, name: str) -> ModelPublic:
        return self._get(f"/models/{_seg(name)}", ModelPublic)

    def create_model(self, model: ModelCreate | str, **fields: Any) -> ModelPublic:
        """`create_model("fraud", team="risk")` or `create_model(ModelCreate(...))`."""
        body = model if isinstance(model, ModelCreate) else ModelCreate(name=model, **fields)
        return self._post("/models", ModelPublic, body)

    def list_versions(
        self, model: str, *, limit: int = 200, offset: int = 0
    ) -> ModelVersionsPublic:
        return self._get(
            f"/models/{_seg(model)}/versions",
            ModelVersionsPublic,
            {"limit": limit, "offset": offset},
        )

    def register_version(
        self, model: str, version: ModelVersionCreate | str, **fields: Any
    ) -> ModelVersionPublic:
        """`register_version("fraud", "1.4.0", image=..., metrics={"auc": 0.93})` or with a
        ModelVersionCreate. The model must exist (create_model)."""
        body = (
            version
            if isinstance(version, ModelVersionCreate)
            else ModelVersionCreate(version=version, **fields)
        )
        return self._post(f"/models/{_seg(model)}/versions", ModelVersionPublic, body)

    def get_version(self, model: str, version: str) -> ModelVersionPublic:
        return self._get(f"/models/{_seg(model)}/versions/{_seg(version)}", ModelVersionPublic)

    # -- environments -----------------------------------------------------------------------

    def list_environments(self) -> EnvironmentsPublic:
        return self._get("/environments", EnvironmentsPublic)

    def get_environment(self, name: str) -> EnvironmentPublic:
        return self._get(f"/environments/{_seg(name)}", EnvironmentPublic)

    # -- deployments (history, status, go back in time) -------------------------------------

    def deployments(
        self,
        *,
        model: str | None = None,
        environment: str | None = None,
        states: Sequence[DeploymentState] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> DeploymentsPublic:
        """The deployment history, newest first."""
        params = {
            "model": model,
            "environment": environment,
            "state": [str(s) for s in states] if states else None,
            "limit": limit,
            "offset": offset,
        }
        return self._get("/deployments", DeploymentsPublic, params)

    def history(
        self, model: str, *, environment: str | None = None, limit: int = 100
    ) -> DeploymentsPublic:
        """One model's deployment history (what `modeldeck history` shows)."""
        return self.deployments(model=model, environment=environment, limit=limit)

    def get_deployment(self, deployment_id: int) -> DeploymentPublic:
        return self._get(f"/deployments/{int(deployment_id)}", DeploymentPublic)

    def status(self, model: str | None = None) -> list[StatusRow]:
        """Every model × environment: what runs, since when, what is in flight."""
        return self._get_list("/status", StatusRow, {"model": model})

    def running_at(
        self, environment: str, at: datetime, *, model: str | None = None
    ) -> list[DeploymentPublic]:
        """What ran in `environment` at time `at` (timezone-aware, or UTC if naive)."""
        return self._get_list(
            f"/environments/{_seg(environment)}/running",
            DeploymentPublic,
            {"at": at.isoformat(), "model": model},
        )

    # -- rollouts (changes) -----------------------------------------------------------------

    def promote(
        self,
        model: str,
        version: str,
        environment: str,
        *,
        reason: str = "",
        idempotency_key: str | None = None,
    ) -> DeploymentPublic:
        """Needs deployer. The answer's `state` says where it stands: `active` (done),
        `awaiting_approval` or `rolling_out` (poll get_deployment or advance). A retry with the
        same `idempotency_key` answers the rollout the first call started."""
        body = PromoteRequest(
            model=model,
            version=version,
            environment=environment,
            reason=reason,
            idempotency_key=idempotency_key,
        )
        return self._post("/deployments", DeploymentPublic, body)

    def rollback(
        self,
        model: str,
        environment: str,
        *,
        to_version: str | None = None,
        reason: str = "",
        idempotency_key: str | None = None,
        expected_current_id: int | None = None,
    ) -> DeploymentPublic:
        """Back to the previous good version, or to `to_version` from the history. With
        `expected_current_id`, refused (Conflict) unless that deployment is still active."""
        body = RollbackRequest(
            model=model,
            environment=environment,
            to_version=to_version,
            reason=reason,
            idempotency_key=idempotency_key,
            expected_current_id=expected_current_id,
        )
        return self._post("/rollbacks", DeploymentPublic, body)

    def approve(self, deployment_id: int, *, comment: str = "") -> DeploymentPublic:
        """Needs approver; never one's own request (two-person rule)."""
        body = ApprovalRequest(
            deployment_id=deployment_id, decision=Decision.approve, comment=comment
        )
        return self._post("/approvals", DeploymentPublic, body)

    def reject(self, deployment_id: int, *, comment: str = "") -> DeploymentPublic:
        body = ApprovalRequest(
            deployment_id=deployment_id, decision=Decision.reject, comment=comment
        )
        return self._post("/approvals", DeploymentPublic, body)

    def advance(self, deployment_id: int) -> DeploymentPublic:
        """Ask the cluster how a rollout is doing now and move it on."""
        return self._post(f"/deployments/{int(deployment_id)}/advance", DeploymentPublic)

    # -- alerts -----------------------------------------------------------------------------

    def alerts(
        self, *, status: AlertStatus | None = None, model: str | None = None, limit: int = 200
    ) -> AlertsPublic:
        """Alerts, most recently seen first."""
        params = {"status": str(status) if status else None, "model": model, "limit": limit}
        return self._get("/alerts", AlertsPublic, params)

    def get_alert(self, alert_id: int) -> AlertPublic:
        return self._get(f"/alerts/{int(alert_id)}", AlertPublic)

    def snooze(self, alert_id: int, duration: str) -> AlertPublic:
        """Needs deployer; `duration` like 30m, 2h or 1d (at most 30d)."""
        body = SnoozeRequest(duration=duration)
        return self._post(f"/alerts/{int(alert_id)}/snooze", AlertPublic, body)

    def resolve(self, alert_id: int) -> AlertPublic:
        """Needs deployer; if the problem persists, the next check opens a new alert."""
        return self._post(f"/alerts/{int(alert_id)}/resolve", AlertPublic)

    # -- audit ------------------------------------------------------------------------------

    def audit(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        q: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> AuditEventsPublic:
        """Audit events, newest first; `target` matches a prefix ("model:fraud")."""
        params = {
            "actor": actor,
            "action": action,
            "target": target,
            "q": q,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "limit": limit,
            "offset": offset,
        }
        return self._get("/audit", AuditEventsPublic, params)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(schema: Any) -> TypeAdapter[Any]:
    """TypeAdapters are costly to build: one per schema, reused."""
    adapter = _ADAPTERS.get(schema)
    if adapter is None:
        adapter = _ADAPTERS[schema] = TypeAdapter(schema)
    return adapter
