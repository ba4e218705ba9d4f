"""The forgiving parser of `/modeldeck …` text: a fixed set of verbs, never a shell.

Pure: text in, a typed command out (or a ParseError whose hint is a usage example). Forgiving
about what people type on a phone: extra spaces, upper case, smart quotes, `prod` for
`production`, optional filler words (`to`, `in`), synonyms (`deploy`, `revert`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from modeldeck.core.alerts.snooze import parse_duration
from modeldeck.core.db import possible_id
from modeldeck.core.errors import InvalidInput
from modeldeck.core.naming import SLUG_RE, VERSION_RE

MAX_REASON = 1000


@dataclass(frozen=True)
class Usage:
    syntax: str
    example: str
    summary: str


USAGE: dict[str, Usage] = {
    "help": Usage("help", "help", "this list"),
    "models": Usage("models", "models", "every registered model"),
    "status": Usage(
        "status [MODEL]", "status fraud-detector", "what runs where, since when, rollouts in flight"
    ),
    "versions": Usage("versions MODEL", "versions fraud-detector", "registered versions"),
    "promote": Usage(
        "promote MODEL VERSION to ENV [because REASON]",
        "promote fraud-detector 1.4.0 to prod because better recall",
        "deploy a version (may need approval)",
    ),
    "rollback": Usage(
        "rollback MODEL in ENV [to VERSION] [because REASON]",
        "rollback fraud-detector in prod",
        "go back to the previous version",
    ),
    "history": Usage("history MODEL [in ENV]", "history fraud-detector", "deployment history"),
    "drift": Usage("drift MODEL [ENV]", "drift fraud-detector prod", "latest drift checks"),
    "alerts": Usage("alerts [all]", "alerts", "open alerts (`all` includes resolved)"),
    "snooze": Usage("snooze ALERT DURATION", "snooze 42 2h", "silence an alert (30m, 2h, 1d, 1w)"),
    "whoami": Usage("whoami", "whoami", "your Slack id and modeldeck role"),
}

SYNONYMS = {
    "?": "help",
    "h": "help",
    "list": "models",
    "ls": "models",
    "model": "models",
    "state": "status",
    "st": "status",
    "version": "versions",
    "deploy": "promote",
    "release": "promote",
    "revert": "rollback",
    "undo": "rollback",
    "roll-back": "rollback",
    "log": "history",
    "hist": "history",
    "alert": "alerts",
    "mute": "snooze",
    "silence": "snooze",
    "me": "whoami",
    "who": "whoami",
    "who-am-i": "whoami",
}
TO_WORDS = {"to", "->", "→", "into", "onto", "--to", "-t", "on"}
IN_WORDS = {"in", "on", "from", "at", "--env", "-e", "env"}
REASON_WORDS = {"because", "reason", "reason:", "--reason", "-r", "--", "for", "why", "why:"}


class ParseError(InvalidInput):
    """Text the parser cannot read; `hint` carries the usage example."""


@dataclass(frozen=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True)
class Models:
    pass


@dataclass(frozen=True)
class Status:
    model: str | None = None


@dataclass(frozen=True)
class Versions:
    model: str


@dataclass(frozen=True)
class Promote:
    model: str
    version: str
    environment: str
    reason: str = ""


@dataclass(frozen=True)
class Rollback:
    model: str
    environment: str
    to_version: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class History:
    model: str
    environment: str | None = None


@dataclass(frozen=True)
class Drift:
    model: str
    environment: str | None = None


@dataclass(frozen=True)
class Alerts:
    include_resolved: bool = False


@dataclass(frozen=True)
class Snooze:
    alert_id: int
    duration: timedelta


@dataclass(frozen=True)
class WhoAmI:
    pass


Command = (
    Help
    | Models
    | Status
    | Versions
    | Promote
    | Rollback
    | History
    | Drift
    | Alerts
    | Snooze
    | WhoAmI
)
EnvResolver = Callable[[str], str]


def usage_hint(verb: str) -> str:
    u = USAGE[verb]
    return f"usage: `/modeldeck {u.syntax}` — for example `/modeldeck {u.example}`"


def normalise(text: str) -> str:
    """Undo what Slack and phones do to text: entities, smart quotes, odd spaces."""
    text = text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    for fancy, plain in (
        ("“", '"'),
        ("”", '"'),
        ("‘", "'"),
        ("’", "'"),
        ("—", "--"),
        ("–", "-"),
        ("\u00a0", " "),
    ):
        text = text.replace(fancy, plain)
    return " ".join(text.split())


def parse(text: str, *, resolve_env: EnvResolver = str.lower) -> Command:
    """Parse the text after `/modeldeck`; raise ParseError with a usage example."""
    words = normalise(text).split(" ") if text.strip() else []
    if not words:
        return Help()
    verb = words[0].lower().lstrip("/")
    verb = SYNONYMS.get(verb, verb)
    if verb not in USAGE:
        close = difflib.get_close_matches(verb, [*USAGE, *SYNONYMS], n=1, cutoff=0.6)
        guess = f"did you mean `{SYNONYMS.get(close[0], close[0])}`? " if close else ""
        raise ParseError(
            f"I don't know the command `{words[0][:40]}`.",
            hint=f"{guess}try `/modeldeck help` for the list, or "
            f"`/modeldeck {USAGE['status'].example}`",
        )
    return _PARSERS[verb](_Words(verb, words[1:]), resolve_env)


class _Words:
    """The arguments of one verb, consumed left to right, with errors that show its usage."""

    def __init__(self, verb: str, words: list[str]) -> None:
        self.verb = verb
        self.words = words

    def fail(self, message: str) -> ParseError:
        return ParseError(message, hint=usage_hint(self.verb))

    def peek(self) -> str | None:
        return self.words[0] if self.words else None

    def take(self, what: str) -> str:
        if not self.words:
            raise self.fail(f"`{self.verb}` needs {what}.")
        return self.words.pop(0)

    def skip(self, fillers: set[str]) -> bool:
        if self.words and self.words[0].lower() in fillers:
            self.words.pop(0)
            return True
        return False

    def model(self) -> str:
        name = self.take("a model name").lower().strip("'\"`")
        if not SLUG_RE.fullmatch(name):
            raise self.fail(
                f"`{name[:64]}` is not a model name (like `fraud-detector`: "
                "lower-case letters, digits, '.', '_' and '-')."
            )
        return name

    def version(self) -> str:
        version = self.take("a version").strip("'\"`").removeprefix("@")
        if not VERSION_RE.fullmatch(version):
            raise self.fail(f"`{version[:64]}` is not a version (like `1.4.0`).")
        return version

    def environment(self, resolve: EnvResolver) -> str:
        name = self.take("an environment (like `staging` or `prod`)").strip("'\"`")
        if not SLUG_RE.fullmatch(name.lower()):
            raise self.fail(f"`{name[:64]}` is not an environment name.")
        return resolve(name)

    def reason(self) -> str:
        """Whatever is left, after an optional `because`; a bare trailing text counts too."""
        self.skip(REASON_WORDS)
        text = " ".join(self.words).removeprefix("reason:").strip().strip("'\"")
        self.words = []
        if len(text) > MAX_REASON:
            raise self.fail(f"the reason is {len(text)} characters; keep it under {MAX_REASON}.")
        return text

    def done(self) -> None:
        if self.words:
            raise self.fail(f"I did not expect `{' '.join(self.words)[:80]}` here.")


def _help(w: _Words, _: EnvResolver) -> Command:
    topic = (w.peek() or "").lower()
    return Help(topic=SYNONYMS.get(topic, topic) if topic in USAGE or topic in SYNONYMS else None)


def _models(w: _Words, _: EnvResolver) -> Command:
    w.done()
    return Models()


def _status(w: _Words, _: EnvResolver) -> Command:
    model = w.model() if w.peek() else None
    w.done()
    return Status(model=model)


def _versions(w: _Words, _: EnvResolver) -> Command:
    model = w.model()
    w.done()
    return Versions(model=model)


def _promote(w: _Words, resolve: EnvResolver) -> Command:
    first = w.peek()
    if first and "@" in first.strip("@"):  # promote fraud-detector@1.4.0 to prod
        name, _, version = w.words.pop(0).partition("@")
        w.words[:0] = [name, version]
    model = w.model()
    if (w.peek() or "").lower() in TO_WORDS:
        raise w.fail(f"`promote` needs a version before `{w.peek()}`.")
    version = w.version()
    w.skip(TO_WORDS)
    env = w.environment(resolve)
    return Promote(model=model, version=version, environment=env, reason=w.reason())


def _rollback(w: _Words, resolve: EnvResolver) -> Command:
    model = w.model()
    w.skip(IN_WORDS)
    env = w.environment(resolve)
    to_version = None
    if w.skip(TO_WORDS):
        to_version = w.version()
    elif _looks_like_version(w):  # `rollback m in prod 1.0.0`: never a reason by accident
        version = w.words[0]
        raise ParseError(
            f"`{version[:64]}` after the environment looks like a version: did you mean "
            f"`to {version[:64]}`?",
            hint=f"`/modeldeck rollback {model} in {env} to {version[:64]}` rolls back to it; "
            f"`… because {version[:64]} …` makes it the reason",
        )
    return Rollback(model=model, environment=env, to_version=to_version, reason=w.reason())


_VERSIONISH = re.compile(r"@?[vV]?\d+(?:\.\d+)*(?:[-+][\w.+-]*)?")


def _looks_like_version(w: _Words) -> bool:
    """A reason that starts with `1.0.0`, or is only `v2` or `3`, was most likely meant as
    `to 1.0.0`: a rollback asks rather than guess (`because 1.0.0 …` is a reason)."""
    first = (w.peek() or "").strip("'\"`")
    return bool(_VERSIONISH.fullmatch(first)) and ("." in first or len(w.words) == 1)


def _history(w: _Words, resolve: EnvResolver) -> Command:
    model = w.model()
    env = None
    if w.skip(IN_WORDS) or w.peek():
        env = w.environment(resolve)
    w.done()
    return History(model=model, environment=env)


def _drift(w: _Words, resolve: EnvResolver) -> Command:
    model = w.model()
    env = None
    if w.skip(IN_WORDS) or w.peek():
        env = w.environment(resolve)
    w.done()
    return Drift(model=model, environment=env)


def _alerts(w: _Words, _: EnvResolver) -> Command:
    include = w.skip({"all", "--all", "-a", "resolved"})
    w.done()
    return Alerts(include_resolved=include)


def _snooze(w: _Words, _: EnvResolver) -> Command:
    w.skip({"alert"})
    raw = w.take("an alert number (from `/modeldeck alerts`)").lstrip("#")
    # ASCII digits only ('²'.isdigit() is true), and no number larger than an alert id can be.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12 and possible_id(int(raw))):
        raise w.fail(f"`{raw[:40]}` is not an alert number (like `42`).")
    w.skip({"for"})
    return Snooze(alert_id=int(raw), duration=_duration(w))


def _duration(w: _Words) -> timedelta:
    """Core's parse_duration reads it (the units every interface accepts); its refusal comes
    back with this command's usage line."""
    text = " ".join(w.words)
    w.words = []
    if not text:
        raise w.fail("`snooze` needs a duration, like `30m`, `2h` or `1d`.")
    try:
        return parse_duration(text)
    except InvalidInput as exc:
        raise ParseError(
            exc.message[:120], hint="; ".join(filter(None, [exc.hint, usage_hint(w.verb)]))
        ) from None


def _whoami(w: _Words, _: EnvResolver) -> Command:
    return WhoAmI()


_PARSERS: dict[str, Callable[[_Words, EnvResolver], Command]] = {
    "help": _help,
    "models": _models,
    "status": _status,
    "versions": _versions,
    "promote": _promote,
    "rollback": _rollback,
    "history": _history,
    "drift": _drift,
    "alerts": _alerts,
    "snooze": _snooze,
    "whoami": _whoami,
}
