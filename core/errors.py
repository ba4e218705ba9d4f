"""One exception hierarchy for the core; every interface maps it to its own answer.

API: 404/403/409/422/503; CLI: exit codes and a red line; Slack: friendly text.
"""

from __future__ import annotations


class ModeldeckError(Exception):
    """Base of every error the core raises on purpose."""

    status_code = 500
    title = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class NotFound(ModeldeckError):
    status_code = 404
    title = "not found"


class Forbidden(ModeldeckError):
    status_code = 403
    title = "forbidden"


class Unauthorized(ModeldeckError):
    status_code = 401
    title = "unauthorized"


class Conflict(ModeldeckError):
    status_code = 409
    title = "conflict"


class InvalidInput(ModeldeckError):
    status_code = 422
    title = "invalid input"


class BackendUnavailable(ModeldeckError):
    status_code = 503
    title = "backend unavailable"


class ConfigError(ModeldeckError):
    """The configuration file or environment is wrong; raised before anything starts."""

    status_code = 500
    title = "configuration error"
