"""The FastAPI application: gathers the domain routers and the service endpoints.

Every error leaves as JSON of one shape, `{"error": title, "detail": message, ...}`:
domain errors keep their status (404/403/409/422/503), validation errors add `fields`
(one message per bad field, never the submitted values), an unreachable database is 503.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from modeldeck.core import __version__
from modeldeck.core.api.middleware import BodyLimit, RequestContext
from modeldeck.core.api.routes import API_PREFIX, include_routers
from modeldeck.core.auth.service import TokenCache
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.db import make_engine, ping
from modeldeck.core.errors import ModeldeckError, Unauthorized
from modeldeck.core.heap import freeze_startup_heap
from modeldeck.core.metrics import watch_outbox

log = structlog.get_logger("modeldeck.api")


def field_errors(errors: Any) -> list[dict[str, str]]:
    """Pydantic/FastAPI errors as `{field, message}`: readable, and without the input values
    (which may be large or secret)."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:]
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            message = "unknown field (check the spelling)"
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "")
            where = f" at character {loc[0]}" if loc else ""
            loc, message = [], f"the body is not valid JSON{where}: {reason}".rstrip(": ")
        out.append({"field": ".".join(loc) or "body", "message": message})
    return out


def _error(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": title, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map the core's exceptions (and FastAPI's own) to JSON error responses."""

    @app.exception_handler(ModeldeckError)
    async def _domain_error(_: Request, exc: ModeldeckError) -> JSONResponse:
        if isinstance(exc, Unauthorized):
            return _error(401, exc.title, exc.message, hint=exc.hint)
        return _error(exc.status_code, exc.title, exc.message, hint=exc.hint)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = field_errors(exc.errors())
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return _error(422, "invalid input", detail, fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (204, 304) or exc.status_code < 200:
            return Response(status_code=exc.status_code, headers=exc.headers)
        title = {404: "not found", 405: "method not allowed"}.get(exc.status_code, "error")
        response = _error(exc.status_code, title, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(OperationalError)
    async def _database_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("database.unavailable", error=type(exc.orig).__name__)
        return _error(503, "backend unavailable", "the database is unavailable; retry later")

    @app.exception_handler(DBAPIError)
    async def _database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return _error(503, "backend unavailable", "the database connection was lost")
        log.exception("database.error", error=type(exc.orig).__name__)
        return _error(500, "error", "internal database error (see the server log)")


def create_app(
    settings: Settings, *, engine: Engine | None = None, clock: Clock = utcnow
) -> FastAPI:
    """Build the app. The engine is created from settings unless a test passes one."""
    app = FastAPI(
        title="modeldeck",
        version=__version__,
        description="Registry, rollouts, monitoring and GPU cost of ML models. "
        "Authenticate with `Authorization: Bearer <token>` (see `modeldeck token create`). "
        "Errors are JSON: `{error, detail, hint?, fields?}`.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    app.state.clock = clock
    app.state.token_cache = TokenCache()
    install_error_handlers(app)

    @app.get("/healthz", tags=["service"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers (no database access)."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["service"], include_in_schema=False)
    def readyz(request: Request) -> JSONResponse:
        """Readiness: 503 while the database does not answer."""
        try:
            ping(request.app.state.engine)
        except ModeldeckError as exc:
            return JSONResponse({"status": "unavailable", "detail": exc.message}, 503)
        return JSONResponse({"status": "ready"})

    watch_outbox(app.state.engine)  # pending/dead notifications on /metrics, from the table

    @app.get("/metrics", tags=["service"], include_in_schema=False)
    def metrics() -> PlainTextResponse:  # sync: the outbox gauge queries the database
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    include_routers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(RequestContext)
    return app


def app_from_environment() -> FastAPI:
    """The app for `uvicorn --factory` and `modeldeck api --workers N`: each worker process
    reads the configuration (MODELDECK_CONFIG / MODELDECK_*) and sets up logging itself."""
    from modeldeck.core import logs
    from modeldeck.core.config import load_settings

    settings = load_settings()
    logs.configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    freeze_startup_heap()
    return app
