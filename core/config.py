"""Settings: modeldeck.yaml plus MODELDECK_* environment variables (env wins).

The file is found by `--config`, then MODELDECK_CONFIG, then ./modeldeck.yaml if present.
Nested keys are set from the environment with a double underscore:
MODELDECK_SLACK__BOT_TOKEN, MODELDECK_PROMETHEUS__URL.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from modeldeck.core.errors import ConfigError
from modeldeck.core.naming import Slug

DEFAULT_CONFIG_FILE = "modeldeck.yaml"
DEMO_CONFIG_FILE = ".modeldeck/modeldeck.yaml"  # written by `modeldeck demo`
CONFIG_ENV = "MODELDECK_CONFIG"


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid")


class BackendKind(StrEnum):
    simulated = "simulated"
    kubernetes = "kubernetes"
    kserve = "kserve"


class ClusterConfig(Strict):
    name: Slug
    backend: BackendKind = BackendKind.simulated
    gpu_model: str = "A100"
    gpus: int = Field(default=8, ge=0, description="GPUs in the cluster (simulated backend)")
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    # simulated backend only
    rollout_seconds: float = Field(default=0.0, ge=0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    rollout_timeout_seconds: float = Field(default=600, gt=0)


class EnvironmentConfig(Strict):
    name: Slug
    cluster: Slug
    namespace: str = "default"
    requires_previous: Slug | None = None
    approvals_required: int = Field(default=0, ge=0, le=5)
    auto_rollback: bool = False
    target: str = Field(
        default="{model}",
        description="name of the Deployment / InferenceService; {model} is replaced",
    )
    aliases: list[str] = Field(default_factory=list)
    slack_channels: list[str] = Field(
        default_factory=list,
        description="Slack channel IDs allowed to change this environment; empty = any",
    )


class RolesConfig(Strict):
    """Who may do what. Role names: viewer < deployer < approver < admin."""

    slack_users: dict[str, str] = Field(default_factory=dict)
    slack_groups: dict[str, str] = Field(default_factory=dict)
    emails: dict[str, str] = Field(default_factory=dict)
    default: str | None = Field(default=None, description="role of anyone not listed")

    @model_validator(mode="after")
    def _known_roles(self) -> RolesConfig:
        allowed = {"viewer", "deployer", "approver", "admin"}
        for section in ("slack_users", "slack_groups", "emails"):
            for who, role in getattr(self, section).items():
                if role not in allowed:
                    raise ValueError(
                        f"{section}.{who}: role {role!r} is not one of {sorted(allowed)}"
                    )
        if self.default is not None and self.default not in allowed:
            raise ValueError(f"default: role {self.default!r} is not one of {sorted(allowed)}")
        return self


class SlackConfig(Strict):
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    mode: Literal["socket", "http"] = "socket"
    alert_channel: str | None = None
    approval_channel: str | None = None
    api_url: str | None = Field(default=None, description="Slack Web API base (tests, proxies)")
    http_port: int = 3000

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None


class PrometheusConfig(Strict):
    url: str | None = None
    bearer_token: SecretStr | None = None
    timeout_seconds: float = Field(default=10, gt=0)
    max_points: int = Field(default=11_000, gt=0, description="bound on points per series")
    metrics: dict[str, str] = Field(
        default_factory=lambda: {
            "gpu_util": "DCGM_FI_DEV_GPU_UTIL",
            "fb_used": "DCGM_FI_DEV_FB_USED",
            "fb_free": "DCGM_FI_DEV_FB_FREE",
            "power": "DCGM_FI_DEV_POWER_USAGE",
            "temp": "DCGM_FI_DEV_GPU_TEMP",
            "engine_active": "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "pod_labels": "kube_pod_labels",
        }
    )
    labels: dict[str, str] = Field(
        default_factory=lambda: {
            "gpu": "gpu",
            "uuid": "UUID",
            "gpu_model": "modelName",
            "node": "Hostname",
            "namespace": "namespace",
            "pod": "pod",
            "container": "container",
            "model": "label_modeldeck_io_model",
            "version": "label_modeldeck_io_version",
        }
    )


class CheckConfig(Strict):
    """Schedule and thresholds of the monitoring checks (defaults, or per model)."""

    interval_minutes: int = Field(default=15, ge=1)
    window_minutes: int = Field(default=60, ge=1)
    min_rows: int = Field(default=30, ge=1, description="fewer rows in a window = no_data")
    drift_share: float = Field(default=0.5, gt=0, le=1, description="dataset drift if reached")
    max_missing_share: float = Field(default=0.05, ge=0, le=1)
    performance_drop: float = Field(default=0.05, ge=0, description="relative drop that fails")
    no_data_hours: int = Field(default=6, ge=1)
    segment_column: str | None = None
    expected_rows_per_hour: int | None = Field(default=None, ge=0)
    trust: Literal["shadow", "notify", "pause", "rollback"] = "notify"


class ApiConfig(Strict):
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    public_url: str | None = None


class Settings(BaseSettings):
    """All of modeldeck's configuration. Secrets are SecretStr: never logged, never shown."""

    model_config = SettingsConfigDict(
        env_prefix="MODELDECK_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    database_url: str = "sqlite:///./.modeldeck/modeldeck.db"
    data_dir: str = "./.modeldeck/data"
    dashboard_url: str = "http://127.0.0.1:8501"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    api: ApiConfig = Field(default_factory=ApiConfig)
    clusters: list[ClusterConfig] = Field(default_factory=list)
    environments: list[EnvironmentConfig] = Field(default_factory=list)
    roles: RolesConfig = Field(default_factory=RolesConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    checks: CheckConfig = Field(default_factory=CheckConfig)
    model_checks: dict[str, CheckConfig] = Field(
        default_factory=dict, description="per-model overrides of `checks`"
    )
    gpu_cost_per_hour: dict[str, float] = Field(
        default_factory=lambda: {"A100": 3.67, "H100": 6.98, "L4": 0.81, "T4": 0.53}
    )

    @model_validator(mode="after")
    def _references(self) -> Settings:
        clusters = {c.name for c in self.clusters}
        envs = {e.name for e in self.environments}
        for env in self.environments:
            if env.cluster not in clusters:
                raise ValueError(
                    f"environments.{env.name}.cluster: unknown cluster {env.cluster!r}"
                    f" (known: {sorted(clusters) or 'none'})"
                )
            if env.requires_previous and env.requires_previous not in envs:
                raise ValueError(
                    f"environments.{env.name}.requires_previous: unknown environment "
                    f"{env.requires_previous!r}"
                )
        return self

    def check_config(self, model: str) -> CheckConfig:
        """The check settings of one model: its override merged over the defaults."""
        override = self.model_checks.get(model)
        if override is None:
            return self.checks
        merged = self.checks.model_dump() | override.model_dump(exclude_unset=True)
        return CheckConfig(**merged)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file; the file arrives through init kwargs (see load_settings).
        return (env_settings, init_settings)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    return data


def _explain(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see deploy/modeldeck.example.yaml)"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file in effect, or None when there is none (defaults + env only)."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    for candidate in (Path(DEFAULT_CONFIG_FILE), Path(DEMO_CONFIG_FILE)):
        if candidate.exists():
            return candidate
    return None


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load and validate the configuration; raises ConfigError with one line per problem."""
    file = config_path(path)
    data = _read_yaml(file) if file else {}
    data.update(overrides)
    source = str(file) if file else "environment"
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None
