"""A fake Slack Web API served over real HTTP on 127.0.0.1.

slack_sdk talks to it exactly as to https://slack.com/api/ (point WebClient's base_url, or
settings.slack.api_url, at `fake.url`). It records every call and keeps posted messages, and
has switches for the failures delivery must survive:

    with FakeSlack() as slack:
        slack.go_down("refuse")      # connection refused (nothing listens on the port)
        slack.go_down("error")       # HTTP 500 to every request
        slack.come_back()
        slack.rate_limit(retry_after=30, times=1)   # 429 + Retry-After
        slack.rate_limit(retry_after=60, method="chat.update")   # one method only
        slack.fail_next("chat.postMessage", "channel_not_found")
        slack.on("views.open", lambda call: {"ok": True, "view": {...}})   # extend

Built-in methods: auth.test, chat.postMessage, chat.update, chat.postEphemeral,
chat.getPermalink, views.open, views.publish, usergroups.list (members from `usergroups`).
Unknown methods answer {"ok": false, "error": "unknown_method"}.

Block Kit limits are enforced like Slack does: a message (chat.postMessage, chat.update,
chat.postEphemeral, response_url) whose blocks break one is refused with
{"ok": false, "error": "invalid_blocks", "errors": [... json-pointer ...]} (`block_errors`).

Interactive replies: `fake.response_url("cmd-1")` is a URL to put in a slash command or
block_actions payload; what the app posts there is recorded as calls of method
"response_url" (`fake.responses("cmd-1")`), with the same fault switches as the Web API.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.utils.servers import free_port, wait_until
from tests.utils.slack_blocks import MESSAGE_METHODS, block_errors, invalid_blocks

Handler = Callable[["SlackCall"], dict[str, Any]]


@dataclass
class SlackCall:
    """One request as the fake received it."""

    method: str
    args: dict[str, Any]
    token: str | None
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class Posted:
    """A message as it is now in the fake workspace (after any chat.update)."""

    channel: str
    ts: str
    text: str
    blocks: list[Any] | None
    updates: int = 0
    thread_ts: str | None = None


class FakeSlack:
    """The fake Web API; start() / stop() or use it as a context manager."""

    def __init__(
        self,
        *,
        token: str = "xoxb-test-token",
        port: int | None = None,
        team_id: str = "T0MODELDECK",
        bot_user_id: str = "U0MODELBOT",
        app_token: str = "xapp-test-token",
    ) -> None:
        self.token = token
        self.app_token = app_token  # apps.connections.open (Socket Mode) takes only this one
        self.socket_url: str | None = None  # what apps.connections.open hands out
        self.port = port or free_port()
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self._lock = threading.Lock()
        self._calls: list[SlackCall] = []
        self._posted: dict[tuple[str, str], Posted] = {}
        self._handlers: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": lambda call: {"ok": True, "message_ts": self._next_ts()},
            "chat.getPermalink": lambda call: {
                "ok": True,
                "channel": call.args.get("channel"),
                "permalink": f"https://fake.slack/archives/{call.args.get('channel')}"
                f"/p{str(call.args.get('message_ts', '')).replace('.', '')}",
            },
            "views.open": self._view,
            "views.publish": self._view,
            "usergroups.list": lambda call: {"ok": True, "usergroups": list(self.usergroups)},
            "response_url": lambda call: {"ok": True},
            "apps.connections.open": lambda call: (
                {"ok": True, "url": self.socket_url}
                if self.socket_url
                else {"ok": False, "error": "socket_mode_not_enabled"}
            ),
        }
        self.usergroups: list[dict[str, Any]] = []  # [{"id": "S1", "users": ["U1"]}]
        self._seq = 0
        self._mode = "up"  # up | error
        self._rate_limited: int | None = 0  # calls left to refuse with 429; None = until cleared
        self._retry_after = 1
        self._rate_limited_method: str | None = None  # None: every method
        self._failures: dict[str, list[str]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL for WebClient(base_url=...) and settings.slack.api_url."""
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> FakeSlack:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                fake._serve(self)

            do_GET = do_POST  # noqa: N815

            def log_message(self, *_: Any) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- fault switches --------------------------------------------------------------------

    def go_down(self, mode: str = "refuse") -> None:
        """'refuse': stop listening (connection refused); 'error': answer HTTP 500."""
        if mode == "refuse":
            self.stop()
        elif mode == "error":
            self._mode = "error"
        else:
            raise ValueError(f"unknown mode {mode!r}: use 'refuse' or 'error'")

    def come_back(self) -> None:
        self._mode = "up"
        self._rate_limited = 0
        if self._server is None:
            self.start()

    def rate_limit(
        self, retry_after: int = 1, times: int | None = None, method: str | None = None
    ) -> None:
        """Answer 429 with Retry-After to the next `times` calls (None: until come_back()),
        or only to those of `method` (Slack's limits are per method)."""
        with self._lock:
            self._retry_after = retry_after
            self._rate_limited = times
            self._rate_limited_method = method

    def fail_next(self, method: str, error: str = "channel_not_found", times: int = 1) -> None:
        """Answer the next `times` calls of `method` with {"ok": false, "error": error}."""
        with self._lock:
            self._failures.setdefault(method, []).extend([error] * times)

    def on(self, method: str, handler: Handler) -> None:
        """Serve (or override) a Web API method: handler(call) -> response dict."""
        self._handlers[method] = handler

    # --- what happened ---------------------------------------------------------------------

    @property
    def calls(self) -> list[SlackCall]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str, *, ok_only: bool = False) -> list[SlackCall]:
        return [
            c
            for c in self.calls
            if c.method == method and (not ok_only or (c.status == 200 and c.response.get("ok")))
        ]

    @property
    def messages(self) -> list[Posted]:
        with self._lock:
            return list(self._posted.values())

    def message(self, channel: str, ts: str) -> Posted:
        with self._lock:
            return self._posted[(channel, ts)]

    def response_url(self, key: str = "default") -> str:
        """A response_url for a payload; posts to it are recorded as method "response_url"."""
        return f"http://127.0.0.1:{self.port}/respond/{key}"

    def responses(self, key: str | None = None) -> list[SlackCall]:
        """What the app posted to response_url(key) (to any response_url when key is None)."""
        return [
            c for c in self.calls_to("response_url") if key is None or c.args.get("_key") == key
        ]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[SlackCall]:
        """Poll until `count` successful calls of `method` arrived."""
        return list(
            wait_until(
                lambda: (
                    (calls := self.calls_to(method, ok_only=True)) and len(calls) >= count and calls
                ),
                timeout=timeout,
                what=f"{count}× {method}",
            )
        )

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._posted.clear()
            self._failures.clear()

    # --- serving ---------------------------------------------------------------------------

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        path = urlsplit(request.path)
        method = path.path.rsplit("/", 1)[-1]
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        args = _parse_args(raw, request.headers.get("Content-Type", ""), path.query)
        if path.path.startswith("/respond/"):
            method, args["_key"] = "response_url", method
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or args.pop("token", None)
        call = SlackCall(method=method, args=args, token=token)
        status, body, headers = self._answer(call)
        call.status, call.response = status, body
        with self._lock:
            self._calls.append(call)
        data = json.dumps(body).encode() if status != 500 else b"<html>Internal Error</html>"
        request.send_response(status)
        request.send_header(
            "Content-Type", "application/json; charset=utf-8" if status != 500 else "text/html"
        )
        request.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(data)

    def _answer(self, call: SlackCall) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self._mode == "error":
            return 500, {"ok": False, "error": "internal_error"}, {}
        with self._lock:
            limited = self._rate_limited_method in (None, call.method)
            if limited and (self._rate_limited is None or self._rate_limited > 0):
                if self._rate_limited is not None:
                    self._rate_limited -= 1
                return (
                    429,
                    {"ok": False, "error": "ratelimited"},
                    {"Retry-After": str(self._retry_after)},
                )
            failures = self._failures.get(call.method)
            if failures:
                return 200, {"ok": False, "error": failures.pop(0)}, {}
        wanted = self.app_token if call.method == "apps.connections.open" else self.token
        if call.token != wanted and call.method != "response_url":
            return 200, {"ok": False, "error": "invalid_auth" if call.token else "not_authed"}, {}
        handler = self._handlers.get(call.method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        if call.method in MESSAGE_METHODS and call.args.get("blocks"):
            errors = block_errors(call.args["blocks"])
            if errors:
                return 200, invalid_blocks(errors), {}
        return 200, handler(call), {}

    def _next_ts(self) -> str:
        with self._lock:
            self._seq += 1
            return f"{1_700_000_000 + self._seq}.{self._seq:06d}"

    def _auth_test(self, call: SlackCall) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack/",
            "team": "modeldeck-test",
            "user": "modeldeck",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": "B0MODELBOT",
        }

    def _post_message(self, call: SlackCall) -> dict[str, Any]:
        channel = str(call.args.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not call.args.get("text") and not call.args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        posted = Posted(
            channel=channel,
            ts=ts,
            text=str(call.args.get("text") or ""),
            blocks=call.args.get("blocks"),
            thread_ts=call.args.get("thread_ts"),
        )
        with self._lock:
            self._posted[(channel, ts)] = posted
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "message": {"text": posted.text, "blocks": posted.blocks, "ts": ts},
        }

    def _view(self, call: SlackCall) -> dict[str, Any]:
        view = call.args.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {"id": f"V{self._next_ts().replace('.', '')}", **view}}

    def _update(self, call: SlackCall) -> dict[str, Any]:
        key = (str(call.args.get("channel")), str(call.args.get("ts")))
        with self._lock:
            posted = self._posted.get(key)
            if posted is None:
                return {"ok": False, "error": "message_not_found"}
            posted.text = str(call.args.get("text") or posted.text)
            posted.blocks = call.args.get("blocks", posted.blocks)
            posted.updates += 1
        return {"ok": True, "channel": key[0], "ts": key[1], "text": posted.text}


def _parse_args(raw: bytes, content_type: str, query: str) -> dict[str, Any]:
    args: dict[str, Any] = dict(parse_qsl(query))
    if raw and "json" in content_type:
        args.update(json.loads(raw))
    elif raw:
        args.update(dict(parse_qsl(raw.decode())))
    for key in ("blocks", "attachments", "view", "metadata"):
        if isinstance(args.get(key), str):  # form-encoded calls send these as JSON strings
            try:
                args[key] = json.loads(args[key])
            except ValueError:
                pass
    return args
