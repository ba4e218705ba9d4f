"""Settings: modeldeck.yaml plus MODELDECK_* environment variables (env wins).

The file is found by `--config`, then MODELDECK_CONFIG, then ./modeldeck.yaml if present.
Nested keys are set from the environment with a double underscore:
MODELDECK_SLACK__BOT_TOKEN, MODELDECK_PROMETHEUS__URL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from modeldeck.core.config_sections import (
    ApiConfig as ApiConfig,
)
from modeldeck.core.config_sections import (
    BackendKind as BackendKind,
)
from modeldeck.core.config_sections import (
    CheckConfig as CheckConfig,
)
from modeldeck.core.config_sections import (
    ClusterConfig as ClusterConfig,
)
from modeldeck.core.config_sections import (
    EnvironmentConfig as EnvironmentConfig,
)
from modeldeck.core.config_sections import (
    NotifyConfig as NotifyConfig,
)
from modeldeck.core.config_sections import (
    PersonConfig as PersonConfig,
)
from modeldeck.core.config_sections import (
    PrometheusConfig as PrometheusConfig,
)
from modeldeck.core.config_sections import (
    RolesConfig as RolesConfig,
)
from modeldeck.core.config_sections import (
    SchedulerConfig as SchedulerConfig,
)
from modeldeck.core.config_sections import (
    SlackConfig as SlackConfig,
)
from modeldeck.core.config_sections import (  # re-exported: import them from here
    Strict as Strict,
)
from modeldeck.core.config_sections import (
    WebhookConfig as WebhookConfig,
)
from modeldeck.core.db import check_url
from modeldeck.core.errors import ConfigError

DEFAULT_CONFIG_FILE = "modeldeck.yaml"
DEMO_CONFIG_FILE = ".modeldeck/modeldeck.yaml"  # written by `modeldeck demo`
ENV_PREFIX = "MODELDECK_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
# The levels both logging and uvicorn know (uvicorn has no WARN, FATAL or NOTSET).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    """All of modeldeck's configuration. Secrets are SecretStr: never logged, never shown."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
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
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    model_checks: dict[str, CheckConfig] = Field(
        default_factory=dict, description="per-model overrides of `checks`"
    )
    gpu_cost_per_hour: dict[str, float] = Field(
        default_factory=lambda: {"A100": 3.67, "H100": 6.98, "L4": 0.81, "T4": 0.53}
    )

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        check_url(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
        return level

    @model_validator(mode="after")
    def _references(self) -> Settings:
        clusters = {c.name for c in self.clusters}
        envs = {e.name for e in self.environments}
        for section, names in (
            ("clusters", [c.name for c in self.clusters]),
            ("environments", [e.name for e in self.environments]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{section}: duplicate name {', '.join(dupes)}")
        aliases: dict[str, str] = {}
        for env in self.environments:
            for alias in env.aliases:
                owner = aliases.setdefault(alias.lower(), env.name)
                if (alias.lower() in envs and alias.lower() != env.name) or owner != env.name:
                    raise ValueError(
                        f"environments[{env.name}].aliases: {alias!r} already names "
                        f"{owner if owner != env.name else alias.lower()}"
                    )
        for env in self.environments:
            if env.requires_previous == env.name:
                raise ValueError(
                    f"environments[{env.name}].requires_previous: cannot require itself"
                )
            if env.cluster not in clusters:
                raise ValueError(
                    f"environments[{env.name}].cluster: unknown cluster {env.cluster!r}"
                    f" (known: {sorted(clusters) or 'none'})"
                )
            if env.requires_previous and env.requires_previous not in envs:
                raise ValueError(
                    f"environments[{env.name}].requires_previous: unknown environment "
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None)
        detail = f": {problem}" if problem else ""
        raise ConfigError(f"{path}: not valid YAML{where}{detail}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, not {type(data).__name__}"
        )
    for key in data:
        # pydantic-settings reads `_env_file`, `_secrets_dir`... from init arguments: a config
        # file must not be able to point the loader somewhere else.
        if not isinstance(key, str) or key.startswith("_"):
            raise ConfigError(f"{path}: {key}: unknown key (see deploy/modeldeck.example.yaml)")
    return data


def _env_var_for(loc: tuple[int | str, ...]) -> str | None:
    """The MODELDECK_* variable that set the value at `loc`, if the environment set it."""
    env = {k.upper(): k for k in os.environ}
    names: list[str] = []
    parts: list[str] = []
    for part in loc:
        if not isinstance(part, str):
            break
        parts.append(part.upper())
        names.append(ENV_PREFIX + "__".join(parts))
    for name in reversed(names):  # the most specific variable first
        if name in env:
            return env[name]
    return None


def _where(data: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """`environments[production].cluster` rather than `environments.1.cluster`."""
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            out += f"[{name}]" if isinstance(name, str) and name else f"[{part}]"
            node = item
        else:
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _explain(exc: ValidationError, source: str, data: dict[str, Any] | None = None) -> str:
    """One line per problem: where it came from (file or variable), the key, what is wrong."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see deploy/modeldeck.example.yaml)"
        elif err["type"] in ("value_error", "assertion_error"):
            msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        var = _env_var_for(loc) if loc else None
        origin = f"environment variable {var}" if var else source
        key = _where(data or {}, loc)
        lines.append(f"{origin}: {key}: {msg}" if key else f"{origin}: {msg}")
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
        raise ConfigError(_explain(exc, source, data)) from None
