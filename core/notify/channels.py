"""Delivery channels for the outbox: Slack (Web API) and generic JSON webhooks.

A channel sends one rendered message or raises DeliveryError saying whether a retry can help
(Slack down, 5xx, 429 with Retry-After) or not (channel_not_found, invalid_auth, 4xx). The
outbox (service.drain) owns retries, backoff and dead letters; channels never retry themselves,
so slack_sdk's own retry handlers are switched off. The one exception: a message Slack refuses
as `invalid_blocks` is sent again at once as plain text, so a Block Kit mistake never loses an
alert.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any, Protocol
from urllib.error import URLError

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from modeldeck.core import logs
from modeldeck.core.alerts.models import Alert
from modeldeck.core.alerts.public import to_public
from modeldeck.core.config import Settings, WebhookConfig
from modeldeck.core.notify.models import OutboxMessage
from modeldeck.core.rollouts.models import Deployment

Rendered = dict[str, Any]  # {"text": fallback text, "blocks": [...]} from notify.blocks.render

ALERT_KINDS = frozenset({"alert", "alert_resolved", "alert_update"})
DEPLOYMENT_KINDS = frozenset({"approval_request", "deployment_update"})
# These change a message already posted (chat.update) when there is one.
UPDATE_KINDS = frozenset({"alert_resolved", "alert_update", "deployment_update"})
# These only make sense as an update; with nothing posted there is nothing to do.
UPDATE_ONLY_KINDS = frozenset({"alert_update"})
# Slack errors worth retrying (the rest mean the request itself is wrong: retrying won't help).
SLACK_TRANSIENT = frozenset(
    {
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "ratelimited",
        "team_added_to_org",
    }
)
SLACK_API = "https://slack.com/api/"
PLAIN_TEXT_LIMIT = 4000  # kit.message keeps `text` within 3000; room for the link
log = logs.get("modeldeck.notify")


class DeliveryError(Exception):
    """A send failed. `permanent`: do not retry; `retry_after`: the receiver asked us to wait;
    `outage`: the receiver is unreachable, failing (5xx) or pacing us, so the outbox keeps
    trying for NotifyConfig.give_up_after_hours instead of counting attempts."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        code: str | None = None,
        outage: bool = True,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.code = code
        self.outage = outage and not permanent

    @property
    def rate_limited(self) -> bool:
        return self.retry_after is not None


class Skip(Exception):
    """Nothing to deliver (channel not configured, nothing to update); not an error."""


class Channel(Protocol):
    """Where outbox messages go. `name` matches OutboxMessage.channel."""

    name: str

    def send(self, session: Session, message: OutboxMessage, content: Rendered) -> None:
        """Deliver, or raise DeliveryError / Skip. May update anchor rows (Slack ts) in
        `session`; the outbox commits them together with the message's new status."""
        ...


def anchor(session: Session, message: OutboxMessage) -> Alert | Deployment | None:
    """The row a message is about, which remembers where its Slack message lives."""
    if message.kind in ALERT_KINDS and message.payload.get("alert_id") is not None:
        return session.get(Alert, int(message.payload["alert_id"]))
    if message.kind in DEPLOYMENT_KINDS and message.payload.get("deployment_id") is not None:
        return session.get(Deployment, int(message.payload["deployment_id"]))
    return None


class SlackChannel:
    """Posts with chat.postMessage; a resolve or update edits the posted message (chat.update)."""

    name = "slack"

    def __init__(self, settings: Settings, *, client: WebClient | None = None) -> None:
        self.settings = settings.slack
        self.client = client
        if client is None and self.settings.bot_token is not None:
            base = (self.settings.api_url or SLACK_API).rstrip("/") + "/"
            self.client = WebClient(
                token=self.settings.bot_token.get_secret_value(),
                base_url=base,
                timeout=10,
                retry_handlers=[],
            )

    def target_channel(self, message: OutboxMessage) -> str | None:
        explicit = message.payload.get("channel")
        if explicit:
            return str(explicit)
        if message.kind in DEPLOYMENT_KINDS:
            origin = message.payload.get("origin_channel")
            return (
                self.settings.approval_channel
                or (str(origin) if origin else None)
                or self.settings.alert_channel
            )
        return self.settings.alert_channel

    def send(self, session: Session, message: OutboxMessage, content: Rendered) -> None:
        if self.client is None:
            raise Skip("Slack is not configured (no slack.bot_token)")
        row = anchor(session, message)
        text, blocks = str(content.get("text") or ""), content.get("blocks")
        if message.kind in UPDATE_KINDS and row is not None and row.slack_ts:
            try:
                self._send(
                    "chat_update",
                    content,
                    channel=row.slack_channel,
                    ts=row.slack_ts,
                    text=text,
                    blocks=blocks,
                )
                return
            except DeliveryError as exc:
                if exc.code != "message_not_found":
                    raise
                # Someone deleted the original message: post a fresh one below.
        if message.kind in UPDATE_ONLY_KINDS:
            raise Skip("no Slack message to update")
        channel = self.target_channel(message)
        if not channel:
            raise Skip(
                f"no Slack channel for {message.kind} messages "
                "(set slack.alert_channel or slack.approval_channel)"
            )
        response = self._send(
            "chat_postMessage", content, channel=channel, text=text, blocks=blocks
        )
        if row is not None:
            row.slack_channel = str(response.get("channel") or channel)
            row.slack_ts = str(response.get("ts"))
            session.add(row)

    def _send(self, method: str, content: Rendered, **kwargs: Any) -> Any:
        """Call `method`; if Slack refuses the blocks, once more as plain text (the fallback
        text and the dashboard link), so the alert still reaches people."""
        try:
            return self._call(method, **kwargs)
        except DeliveryError as exc:
            if exc.code != "invalid_blocks" or not kwargs.get("blocks"):
                raise
            log.error("notify.invalid_blocks", method=method, error=str(exc))
        # chat.update keeps the old blocks unless told to drop them: [] replaces them.
        blocks: list[Any] | None = [] if method == "chat_update" else None
        return self._call(method, **{**kwargs, "text": plain_text(content), "blocks": blocks})

    def _call(self, method: str, **kwargs: Any) -> Any:
        assert self.client is not None
        try:
            return getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            raise _slack_error(method, exc) from exc
        except (URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"Slack unreachable: {reason}") from exc


def plain_text(content: Rendered) -> str:
    """The message without Block Kit: its fallback text and the first link it offers."""
    text = str(content.get("text") or "")
    links = [
        str(element["url"])
        for block in content.get("blocks") or []
        if isinstance(block, dict)
        for element in block.get("elements") or []
        if isinstance(element, dict) and element.get("url")
    ]
    if links:
        text = f"{text}\n<{links[0]}|Open dashboard>"
    return text[:PLAIN_TEXT_LIMIT]


def _slack_error(method: str, exc: SlackApiError) -> DeliveryError:
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    code = str(data.get("error") or f"http_{status}")
    if status == 429:
        wait = (
            retry_after_seconds(
                response.headers.get("Retry-After") or response.headers.get("retry-after")
            )
            or 1.0
        )
        return DeliveryError(
            f"rate limited by Slack on {method}; retry after {wait:g}s",
            retry_after=wait,
            code="ratelimited",
        )
    if status >= 500 or code in SLACK_TRANSIENT:
        return DeliveryError(f"Slack {method} failed: HTTP {status} {code}"[:500], code=code)
    return DeliveryError(f"Slack refused {method}: {code}", permanent=True, code=code)


def retry_after_seconds(value: Any) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
        if value is None:
            return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class WebhookChannel:
    """POSTs JSON to a URL. The Idempotency-Key header lets receivers drop a redelivery."""

    def __init__(self, config: WebhookConfig, *, client: httpx.Client | None = None) -> None:
        self.config = config
        self.name = f"webhook:{config.name}"
        self.client = client or httpx.Client(timeout=config.timeout_seconds)

    def send(self, session: Session, message: OutboxMessage, content: Rendered) -> None:
        if message.kind not in self.config.kinds:
            raise Skip(f"{self.name} does not take {message.kind} messages")
        body: dict[str, Any] = {
            "id": f"modeldeck-outbox-{message.id}",
            "kind": message.kind,
            "text": content.get("text"),
            "payload": message.payload,
        }
        row = anchor(session, message)
        if isinstance(row, Alert):
            body["alert"] = to_public(session, [row])[0].model_dump(mode="json")
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        headers["Idempotency-Key"] = body["id"]
        try:
            response = self.client.post(
                self.config.url.get_secret_value(), json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{self.name} unreachable: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        status = response.status_code
        if status == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After")) or 1.0
            raise DeliveryError(
                f"{self.name} rate limited; retry after {wait:g}s", retry_after=wait
            )
        if status >= 500 or status == 408:
            raise DeliveryError(f"{self.name} answered HTTP {status}")
        raise DeliveryError(f"{self.name} refused the message: HTTP {status}", permanent=True)


def build_channels(settings: Settings) -> dict[str, Channel]:
    """Every channel the configuration names. Slack is always present: unconfigured, it
    skips its messages instead of retrying them forever."""
    channels: dict[str, Channel] = {"slack": SlackChannel(settings)}
    for hook in settings.notify.webhooks:
        channel = WebhookChannel(hook)
        channels[channel.name] = channel
    return channels
