"""The sections of modeldeck.yaml (clusters, environments, roles, slack, prometheus, checks,
notify, scheduler, api); Settings in config.py puts them together."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from modeldeck.core.naming import Slug


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
    api_timeout_seconds: float = Field(default=10, gt=0, description="per Kubernetes API request")
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


class PersonConfig(Strict):
    """The identities one person acts under, one list per interface (two-person rule)."""

    slack: list[str] = Field(default_factory=list, description="Slack user IDs (U…)")
    emails: list[str] = Field(default_factory=list, description="dashboard (OIDC) e-mails")
    tokens: list[str] = Field(default_factory=list, description="API token names")
    cli: list[str] = Field(default_factory=list, description="CLI users (MODELDECK_USER)")


class RolesConfig(Strict):
    """Who may do what. Role names: viewer < deployer < approver < admin."""

    slack_users: dict[str, str] = Field(default_factory=dict)
    slack_groups: dict[str, str] = Field(default_factory=dict)
    emails: dict[str, str] = Field(default_factory=dict)
    oidc_groups: dict[str, str] = Field(
        default_factory=dict, description="dashboard sign-in: IdP group → role"
    )
    oidc_groups_claim: str = Field(
        default="groups",
        min_length=1,
        description="ID-token claim holding the groups (a dotted path: realm_access.roles)",
    )
    oidc_trust_unverified_email: bool = Field(
        default=False,
        description="map emails the IdP does not mark email_verified=true (only for an IdP "
        "that never sends the claim and only holds verified addresses)",
    )
    default: str | None = Field(default=None, description="role of anyone not listed")
    people: dict[Slug, PersonConfig] = Field(
        default_factory=dict,
        description="person → their identities per interface; the two-person rule compares people",
    )

    @model_validator(mode="after")
    def _one_person_per_identity(self) -> RolesConfig:
        owners: dict[tuple[str, str], str] = {}
        for person, ids in self.people.items():
            for kind in ("slack", "emails", "tokens", "cli"):
                for identity in getattr(ids, kind):
                    key = (kind, identity.strip().lower() if kind == "emails" else identity)
                    if not key[1]:
                        raise ValueError(f"people.{person}.{kind}: empty identity")
                    owner = owners.setdefault(key, person)
                    if owner != person:
                        raise ValueError(
                            f"people.{person}.{kind}: {identity!r} already belongs to {owner}; "
                            "an identity may belong to only one person"
                        )
        return self

    @model_validator(mode="after")
    def _known_roles(self) -> RolesConfig:
        allowed = {"viewer", "deployer", "approver", "admin"}
        for section in ("slack_users", "slack_groups", "emails", "oidc_groups"):
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
    http_port: int = Field(default=3000, ge=1, le=65535)
    allowed_teams: list[str] = Field(
        default_factory=list,
        description="other workspaces (team IDs, T…) whose users get roles; the bot's own always",
    )
    groups_max_age_seconds: float = Field(
        default=3600,
        gt=0,
        description="user-group memberships not refreshed for this long are dropped (fail closed)",
    )

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None


class PrometheusConfig(Strict):
    url: str | None = None
    bearer_token: SecretStr | None = None
    timeout_seconds: float = Field(default=10, gt=0)
    max_points: int = Field(default=11_000, gt=0, description="bound on points per series")
    step_seconds: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="hardware sample resolution; >= the DCGM scrape interval",
    )
    idle_util_percent: float = Field(default=5, ge=0, le=100, description="GPU idle below this")
    idle_hours: float = Field(default=6, gt=0, description="…for this long, held by a version")
    memory_full_percent: float = Field(default=95, gt=0, le=100)
    temp_max_celsius: float = Field(default=85, gt=0)
    metrics: dict[str, str] = Field(
        default_factory=lambda: {
            "gpu_util": "DCGM_FI_DEV_GPU_UTIL",
            "fb_used": "DCGM_FI_DEV_FB_USED",
            "fb_free": "DCGM_FI_DEV_FB_FREE",
            "power": "DCGM_FI_DEV_POWER_USAGE",
            "temp": "DCGM_FI_DEV_GPU_TEMP",
            "engine_active": "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "energy": "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
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
            "cluster": "cluster",
            "mig_instance": "GPU_I_ID",
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
    no_labels_hours: float | None = Field(
        default=None, gt=0, description="no label arrived for this long = alert; no_data_hours"
    )
    min_label_coverage: float = Field(
        default=0.5, ge=0, le=1, description="labelled share of a window to judge on labels"
    )
    label_catchup_days: int = Field(
        default=7, ge=0, le=90, description="re-check past decay windows once labels arrive"
    )
    segment_column: str | None = None
    expected_rows_per_hour: int | None = Field(default=None, ge=0)
    trust: Literal["shadow", "notify", "pause", "rollback"] = "notify"


class WebhookConfig(Strict):
    """A generic JSON webhook that receives notifications (e.g. PagerDuty/Opsgenie bridges)."""

    name: Slug
    url: SecretStr = Field(description="http(s) URL; secret: many embed a token")
    kinds: list[str] = Field(default_factory=lambda: ["alert", "alert_resolved"])
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10, gt=0)

    @model_validator(mode="after")
    def _http(self) -> WebhookConfig:
        if not self.url.get_secret_value().startswith(("http://", "https://")):
            raise ValueError(f"webhook {self.name}: url must start with http:// or https://")
        return self


class NotifyConfig(Strict):
    """Alert repetition and outbox delivery (retry with exponential backoff, then dead letter)."""

    repeat_interval_hours: float = Field(default=4, gt=0, description="re-notify still firing")
    give_up_after_hours: float = Field(
        default=72, gt=0, description="while the receiver is down (network, 5xx, 429): keep trying"
    )
    max_attempts: int = Field(
        default=20, ge=1, description="other failures (a rendering bug): then dead-lettered"
    )
    backoff_seconds: float = Field(default=5, gt=0)
    max_backoff_seconds: float = Field(default=1800, gt=0)
    webhooks: list[WebhookConfig] = Field(default_factory=list)


class SchedulerConfig(Strict):
    """Intervals of the scheduler's own jobs (check intervals are per model in `checks`)."""

    drain_seconds: float = Field(default=5, gt=0)
    rollouts_seconds: float = Field(default=10, gt=0, description="advance rollouts in flight")
    reconcile_seconds: float = Field(default=60, gt=0, description="compare clusters to records")
    sync_seconds: float = Field(default=60, gt=0)
    workers: int = Field(default=4, ge=1, description="threads running jobs")
    leader_poll_seconds: float = Field(default=5, gt=0)


class ApiConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    public_url: str | None = None
