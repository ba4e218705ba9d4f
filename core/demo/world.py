"""The demo world: its clusters, people, models and 90-day timeline (DESIGN §7).

Days count from the start of the history (day 0 = 90 days before the seeding hour); a day
like 20.4 is 09:36 on day 20. Who has which problem:

  fraud-detector   input drifts gradually from day 60 (amount and merchant_category shift)
  churn-predictor  upstream breaks on day 80 (monthly_spend goes null, plan "family" appears)
  eta-regressor    accuracy decays from day 50 (deliveries take longer than it predicts, MAE
                   grows) and it keeps an idle A100 in production (a small tabular model on
                   a GPU it does not need)
  search-ranker    the healthy one: nothing about it should ever fire

Every model went through staging then production several times; production needs one
approval (given by the platform lead, never the requester). fraud-detector 1.4.0 was rolled
back in production a day after its release; fraud-detector 1.5.0, retrained on the drifted
data, waits for approval at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modeldeck.core.auth.models import Actor, Role

DAYS = 90
REFERENCE_ROWS = 5_000
HOLDOUT_ROWS = 20_000  # the validation set the registered metrics come from
STAGING_HISTORY_EVERY = 3  # days between historical staging checks, except the last two weeks
CHECK_WINDOW_MINUTES = 24 * 60  # a whole day: every hour of the daily cycle, ~4k rows
MIN_ROWS = 400  # fewer rows in a window make drift scores noise, not evidence
DRIFT_SHARE = 0.3  # dataset drift once 30% of a model's features drifted
STAGING_SHADOW = 1.0  # staging receives a mirror of production requests (shadow traffic)

PRODUCTION = "production"
STAGING = "staging"

CI = Actor(name="token:ci-pipeline", role=Role.deployer, via="api")
FEATURE_LOGGER = Actor(name="token:feature-logger", role=Role.deployer, via="api")
APPROVER = Actor(name="slack:U02BEN7QK", role=Role.approver, via="slack")  # ben, platform lead


def person(slack_id: str) -> Actor:
    return Actor(name=f"slack:{slack_id}", role=Role.deployer, via="slack")


@dataclass(frozen=True)
class Release:
    """One version: when CI registered it and promoted it to staging, when its owner asked
    for production (approved `approval_hours` later), or None when it never went there."""

    version: str
    registered: float
    staging: float
    production: float | None = None
    approval_hours: float = 2.0
    reason: str = ""
    approved: bool = True  # False: the request still waits for approval at the end


@dataclass(frozen=True)
class Rollback:
    day: float
    environment: str
    reason: str


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    owner: str  # e-mail
    owner_slack: str  # Slack user id of the owner (requests production, rolls back)
    team: str
    task_type: str
    rate_per_hour: float  # mean production requests per hour (a daily curve around it)
    releases: tuple[Release, ...]
    rollbacks: tuple[Rollback, ...] = ()
    git_repo: str = ""

    @property
    def actor(self) -> Actor:
        return person(self.owner_slack)

    def release(self, version: str) -> Release:
        return next(r for r in self.releases if r.version == version)


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="fraud-detector",
        team="risk",
        owner="ana@acme.io",
        owner_slack="U01ANA4PX",
        description="Card-not-present fraud scoring (gradient boosting on transaction "
        "features); blocks or steps up payments above 0.5",
        task_type="classification",
        rate_per_hour=300,
        git_repo="acme/fraud-models",
        releases=(
            Release("1.2.0", 0.2, 0.3, 1.4, reason="first release on the new feature store"),
            Release("1.3.0", 19.6, 20.2, 22.5, reason="adds device_age_days; +1.2pt AUC"),
            Release("1.4.0", 44.8, 45.3, 47.6, reason="monthly retrain"),
            Release("1.4.1", 51.7, 52.2, 54.4, reason="1.4.0 with the batching fix"),
            Release(
                "1.5.0",
                86.3,
                86.8,
                89.2,
                approved=False,
                reason="retrained on the last 30 days after the amount/merchant drift",
            ),
        ),
        rollbacks=(
            Rollback(
                48.6,
                PRODUCTION,
                "p99 latency tripled after 1.4.0 (request batching regression); back to 1.3.0",
            ),
        ),
    ),
    ModelSpec(
        name="churn-predictor",
        team="growth",
        owner="li@acme.io",
        owner_slack="U03LI8ZRT",
        description="7-day churn propensity of subscribers, scored for retention offers",
        task_type="classification",
        rate_per_hour=150,
        git_repo="acme/growth-ml",
        releases=(
            Release("2.0.0", 0.1, 0.5, 2.3, reason="baseline"),
            Release("2.1.0", 29.7, 30.4, 33.5, reason="adds support_tickets"),
            Release("2.2.0", 70.2, 70.8, None),
        ),
    ),
    ModelSpec(
        name="eta-regressor",
        team="logistics",
        owner="sam@acme.io",
        owner_slack="U05SAM2MW",
        description="Delivery time in minutes, shown to customers at checkout",
        task_type="regression",
        rate_per_hour=200,
        git_repo="acme/logistics-ml",
        releases=(
            Release("0.9.0", 0.3, 0.6, 1.2, reason="first model replacing the heuristic"),
            Release("1.0.0", 14.6, 15.1, 17.4, reason="weather and courier load features"),
            Release("1.1.0", 64.5, 65.0, None),
        ),
    ),
    ModelSpec(
        name="search-ranker",
        team="search",
        owner="kim@acme.io",
        owner_slack="U06KIM9DL",
        description="Relevance classifier re-ranking the top 50 search results (GPU)",
        task_type="classification",
        rate_per_hour=240,
        git_repo="acme/search-relevance",
        releases=(
            Release("3.0.0", 0.2, 0.4, 1.5, reason="distilled cross-encoder"),
            Release("3.1.0", 24.7, 25.3, 27.6, reason="more click data"),
            Release("3.2.0", 59.6, 60.2, 62.5, reason="quarterly retrain"),
        ),
    ),
)

HEALTHY_MODEL = "search-ranker"
DRIFTING_MODEL = "fraud-detector"
BROKEN_MODEL = "churn-predictor"
DECAYING_MODEL = "eta-regressor"
IDLE_GPU_MODEL = "eta-regressor"

DRIFT_START, DRIFT_DAYS = 60.0, 20.0  # the shift grows for 20 days, then stays
BREAK_DAY = 80.0
DECAY_START = 50.0


def model(name: str) -> ModelSpec:
    return next(m for m in MODELS if m.name == name)


@dataclass(frozen=True)
class Event:
    """One step of the timeline, in the order the seeder replays them."""

    day: float
    kind: str  # register | staging | request | approve | rollback
    model: str
    version: str = ""
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def timeline() -> list[Event]:
    """Every registry and rollout event of the 90 days, oldest first."""
    events: list[Event] = []
    for spec in MODELS:
        for rel in spec.releases:
            events.append(Event(rel.registered, "register", spec.name, rel.version))
            events.append(Event(rel.staging, "staging", spec.name, rel.version))
            if rel.production is not None:
                events.append(Event(rel.production, "request", spec.name, rel.version, rel.reason))
                if rel.approved:
                    events.append(
                        Event(
                            rel.production + rel.approval_hours / 24,
                            "approve",
                            spec.name,
                            rel.version,
                        )
                    )
        for rb in spec.rollbacks:
            events.append(
                Event(
                    rb.day,
                    "rollback",
                    spec.name,
                    reason=rb.reason,
                    extra={"environment": rb.environment},
                )
            )
    return sorted(events, key=lambda e: (e.day, e.model))


def config(
    base: str, *, api_port: int, dashboard_port: int, prometheus_url: str | None
) -> dict[str, Any]:
    """The demo's modeldeck.yaml: two simulated GPU clusters, staging then production."""
    users = {m.owner_slack: "deployer" for m in MODELS}
    users[APPROVER.name.removeprefix("slack:")] = "approver"
    data: dict[str, Any] = {
        "database_url": f"sqlite:///{base}/modeldeck.db",
        "data_dir": f"{base}/data",
        "dashboard_url": f"http://127.0.0.1:{dashboard_port}",
        "api": {"port": api_port, "public_url": f"http://127.0.0.1:{api_port}"},
        "clusters": [
            {
                "name": "gpu-a100",
                "backend": "simulated",
                "gpu_model": "A100",
                "gpus": 8,
                "rollout_seconds": 20,
            },
            {
                "name": "gpu-l4",
                "backend": "simulated",
                "gpu_model": "L4",
                "gpus": 8,
                "rollout_seconds": 20,
            },
        ],
        "environments": [
            {"name": STAGING, "cluster": "gpu-l4", "namespace": "ml-staging", "aliases": ["stg"]},
            {
                "name": PRODUCTION,
                "cluster": "gpu-a100",
                "namespace": "ml-prod",
                "aliases": ["prod"],
                "requires_previous": STAGING,
                "approvals_required": 1,
                "auto_rollback": True,
            },
        ],
        "roles": {"default": "viewer", "slack_users": users},
        "checks": {
            "window_minutes": CHECK_WINDOW_MINUTES,
            "min_rows": MIN_ROWS,
            "drift_share": DRIFT_SHARE,
            "no_data_hours": 12,
        },
    }
    if prometheus_url:
        data["prometheus"] = {"url": prometheus_url, "step_seconds": 300}
    return data
