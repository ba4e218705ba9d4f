"""Talking to Prometheus: configured names, bounded range queries, errors in our own words.

Every failure becomes a core error: Prometheus down or slow is BackendUnavailable (the API
answers "metrics unavailable since …"), a bad metric name is InvalidInput naming the key to fix.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from modeldeck.core.config import PrometheusConfig
from modeldeck.core.errors import BackendUnavailable, InvalidInput
from modeldeck.core.redaction import redact

METRIC_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
REQUIRED_METRICS = ("gpu_util",)

# Read from a default PrometheusConfig so a user's partial `metrics:` / `labels:` mapping
# overrides some names and keeps the rest, instead of silently dropping them.
_DEFAULTS = PrometheusConfig()


@dataclass(frozen=True)
class Names:
    """The metric and label names in effect (defaults overlaid with the configuration)."""

    metrics: dict[str, str]
    labels: dict[str, str]

    def metric(self, key: str) -> str:
        return self.metrics[key]

    def label(self, key: str) -> str:
        return self.labels[key]


def names(config: PrometheusConfig) -> Names:
    """Validate the configured names; an unknown key or an impossible name is InvalidInput."""
    out: dict[str, dict[str, str]] = {}
    for section, defaults, pattern in (
        ("metrics", _DEFAULTS.metrics, METRIC_RE),
        ("labels", _DEFAULTS.labels, LABEL_RE),
    ):
        configured: dict[str, str] = getattr(config, section)
        for key, value in configured.items():
            if key not in defaults:
                raise InvalidInput(
                    f"prometheus.{section}.{key}: unknown key",
                    hint=f"known keys: {', '.join(sorted(defaults))}",
                )
            if not pattern.fullmatch(value):
                raise InvalidInput(
                    f"prometheus.{section}.{key}: {value!r} is not a valid Prometheus "
                    f"{'metric' if section == 'metrics' else 'label'} name",
                    hint=f"the default is {defaults[key]!r}",
                )
        out[section] = defaults | configured
    return Names(metrics=out["metrics"], labels=out["labels"])


def windows(
    start: datetime, end: datetime, step: int, max_points: int
) -> Iterator[tuple[datetime, datetime]]:
    """Split [start, end] into query ranges of at most `max_points` evaluation points each.

    Prometheus refuses more than 11,000 points per series, and big answers are slow to parse:
    a long backfill becomes several bounded queries instead of one huge one.
    """
    span = timedelta(seconds=step * max(max_points - 1, 1))
    cursor = start
    while cursor <= end:
        upper = min(cursor + span, end)
        yield cursor, upper
        cursor = upper + timedelta(seconds=step)


def floor_time(value: datetime, seconds: int) -> datetime:
    ts = int(value.timestamp())
    return datetime.fromtimestamp(ts - ts % seconds, tz=UTC)


@dataclass
class Prometheus:
    """A thin, typed wrapper over prometheus-api-client that counts and bounds its queries."""

    config: PrometheusConfig
    queries: int = 0
    max_points_seen: int = 0
    _client: PrometheusConnect | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        if not self.config.url:
            raise BackendUnavailable(
                "Prometheus is not configured",
                hint="set prometheus.url in modeldeck.yaml or MODELDECK_PROMETHEUS__URL",
            )
        return self.config.url.rstrip("/")

    @property
    def client(self) -> PrometheusConnect:
        if self._client is None:
            headers = None
            if self.config.bearer_token is not None:
                headers = {"Authorization": f"Bearer {self.config.bearer_token.get_secret_value()}"}
            # One quick retry for a refused connection or a 50x blip; none for a read timeout
            # (a hanging Prometheus would double the wait). Down must fail fast, not hang the
            # scheduler for the library's default 1+2+4 s of back-off.
            retry = Retry(
                total=1,
                read=False,
                backoff_factor=0.1,
                status_forcelist=[502, 503, 504],
                raise_on_status=False,
            )
            self._client = PrometheusConnect(
                url=self.url, headers=headers, retry=retry, timeout=self.config.timeout_seconds
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: int
    ) -> list[dict[str, Any]]:
        """One range query; refuses to ask for more than max_points points per series."""
        points = int((end - start).total_seconds()) // step + 1
        if points > self.config.max_points:
            raise InvalidInput(
                f"a query over {start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} at "
                f"{step}s would return {points} points per series "
                f"(limit prometheus.max_points={self.config.max_points})"
            )
        self.queries += 1
        self.max_points_seen = max(self.max_points_seen, points)
        result: list[dict[str, Any]] = self._call(
            promql,
            lambda: self.client.custom_query_range(
                promql,
                start_time=start,
                end_time=end,
                step=str(step),
                params={"timeout": f"{int(self.config.timeout_seconds * 1000)}ms"},
            ),
        )
        return result

    def metric_names(self) -> list[str]:
        """Every metric name Prometheus knows (to tell a typo from an exporter that is down)."""
        self.queries += 1
        values: list[str] = self._call(
            "label __name__ values", lambda: self.client.get_label_values("__name__")
        )
        return values

    def label_names(self, metric: str, start: datetime, end: datetime) -> list[str]:
        """The label names `metric`'s series carry in [start, end] (to explain a label typo)."""
        self.queries += 1
        values: list[str] = self._call(
            f"labels of {metric}",
            lambda: self.client.get_label_names(
                params={
                    "match[]": metric,
                    "start": str(start.timestamp()),
                    "end": str(end.timestamp()),
                }
            ),
        )
        return values

    def _call(self, what: str, call: Any) -> Any:
        try:
            return call()
        except requests.Timeout:
            raise BackendUnavailable(
                f"Prometheus at {redact(self.url)} did not answer within "
                f"{self.config.timeout_seconds:g}s",
                hint="raise prometheus.timeout_seconds or check the Prometheus server's load",
            ) from None
        except requests.RequestException as exc:
            raise BackendUnavailable(
                f"Prometheus at {redact(self.url)} is unreachable: {_reason(exc)}"
            ) from None
        except PrometheusApiClientException as exc:
            status, message = _api_error(str(exc))
            if status in (400, 422):
                raise InvalidInput(f"Prometheus refused the query {what!r}: {message}") from None
            raise BackendUnavailable(
                f"Prometheus at {redact(self.url)} answered HTTP {status}: {message}"
            ) from None
        except ValueError as exc:  # a proxy answering HTML instead of JSON
            raise BackendUnavailable(
                f"Prometheus at {redact(self.url)} sent an invalid answer: {exc}"
            ) from None


def _reason(exc: requests.RequestException) -> str:
    text = str(exc)
    for hint in ("Connection refused", "Name or service not known", "Max retries exceeded"):
        if hint in text:
            return hint.lower()
    return type(exc).__name__


def _api_error(text: str) -> tuple[int, str]:
    """prometheus-api-client reports `HTTP Status Code 400 (b'{json}')`: pull out the parts."""
    found = re.match(r"HTTP Status Code (\d+) \((.*)\)$", text, re.S)
    if not found:
        return 0, text
    status, raw = int(found.group(1)), found.group(2)
    try:
        body = ast.literal_eval(raw)
        data = json.loads(body)
        return status, str(data.get("error") or data)
    except (ValueError, SyntaxError, TypeError, AttributeError):
        return status, raw[:300]


def suggest(name: str, known: list[str], what: str = "metric") -> str:
    """'did you mean …' for a metric (or label) name Prometheus has never seen."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"did you mean {', '.join(close)}?" if close else f"no similar {what} is known"
