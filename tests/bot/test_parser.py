"""The forgiving parser: what people type on a phone, and what it refuses with a usage line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeldeck.bot.parser import (
    Alerts,
    Drift,
    Help,
    History,
    Models,
    ParseError,
    Promote,
    Rollback,
    Snooze,
    Status,
    Versions,
    WhoAmI,
    parse,
)
from modeldeck.core.errors import InvalidInput

ALIASES = {"prod": "production", "stg": "staging"}


def resolve(name: str) -> str:
    return ALIASES.get(name.lower(), name.lower())


def p(text: str) -> object:
    return parse(text, resolve_env=resolve)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", Help()),
        ("   ", Help()),
        ("help", Help()),
        ("HELP promote", Help(topic="promote")),
        ("? deploy", Help(topic="promote")),
        ("models", Models()),
        ("ls", Models()),
        ("status", Status()),
        ("  Status   Fraud-Detector ", Status(model="fraud-detector")),
        ("versions fraud-detector", Versions(model="fraud-detector")),
        ("whoami", WhoAmI()),
        ("WHO", WhoAmI()),
        ("alerts", Alerts()),
        ("alerts all", Alerts(include_resolved=True)),
        ("history fraud-detector", History(model="fraud-detector")),
        (
            "history fraud-detector in prod",
            History(model="fraud-detector", environment="production"),
        ),
        ("drift fraud-detector", Drift(model="fraud-detector")),
        ("drift fraud-detector PROD", Drift(model="fraud-detector", environment="production")),
        ("drift fraud-detector in stg", Drift(model="fraud-detector", environment="staging")),
    ],
)
def test_reads(text: str, expected: object) -> None:
    assert p(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "promote fraud-detector 1.4.0 to production",
            Promote("fraud-detector", "1.4.0", "production"),
        ),
        (
            "promote   fraud-detector   1.4.0   to   prod  ",
            Promote("fraud-detector", "1.4.0", "production"),
        ),
        (
            "PROMOTE Fraud-Detector 1.4.0-RC1 TO Prod",
            Promote("fraud-detector", "1.4.0-RC1", "production"),
        ),
        ("deploy fraud-detector 1.4.0 prod", Promote("fraud-detector", "1.4.0", "production")),
        ("promote fraud-detector@1.4.0 -> stg", Promote("fraud-detector", "1.4.0", "staging")),
        (
            "promote fraud-detector 1.4.0 to prod because recall is up 4%",
            Promote("fraud-detector", "1.4.0", "production", "recall is up 4%"),
        ),
        (
            "promote fraud-detector 1.4.0 to prod reason: “fixes the Q4 bias”",
            Promote("fraud-detector", "1.4.0", "production", "fixes the Q4 bias"),
        ),
        (
            "promote fraud-detector 1.4.0 to prod — hotfix for the outage",
            Promote("fraud-detector", "1.4.0", "production", "hotfix for the outage"),
        ),
        (
            "promote fraud-detector 1.4.0 to prod &lt;urgent&gt; &amp; approved",
            Promote("fraud-detector", "1.4.0", "production", "<urgent> & approved"),
        ),
    ],
)
def test_promote(text: str, expected: Promote) -> None:
    assert p(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rollback fraud-detector in production", Rollback("fraud-detector", "production")),
        ("rollback fraud-detector prod", Rollback("fraud-detector", "production")),
        (
            "revert fraud-detector in prod to 1.2.0",
            Rollback("fraud-detector", "production", "1.2.0"),
        ),
        (
            "rollback fraud-detector in prod to 1.2.0 because latency doubled",
            Rollback("fraud-detector", "production", "1.2.0", "latency doubled"),
        ),
        (
            "roll-back fraud-detector --env stg --to 1.0.0",
            Rollback("fraud-detector", "staging", "1.0.0"),
        ),
        # Reasons that merely start with a number are reasons.
        (
            "rollback fraud-detector in prod 500 errors since noon",
            Rollback("fraud-detector", "production", None, "500 errors since noon"),
        ),
        (
            "rollback fraud-detector in prod because 1.0.0 was fine",
            Rollback("fraud-detector", "production", None, "1.0.0 was fine"),
        ),
        (
            "rollback fraud-detector in prod p99",
            Rollback("fraud-detector", "production", None, "p99"),
        ),
    ],
)
def test_rollback(text: str, expected: Rollback) -> None:
    assert p(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("snooze 42 2h", Snooze(42, timedelta(hours=2))),
        ("snooze #42 for 30m", Snooze(42, timedelta(minutes=30))),
        ("mute alert 7 2 hours", Snooze(7, timedelta(hours=2))),
        ("snooze 7 1 DAY", Snooze(7, timedelta(days=1))),
        ("snooze 7 1w", Snooze(7, timedelta(weeks=1))),
        ("snooze 7 for 2 weeks", Snooze(7, timedelta(weeks=2))),
    ],
)
def test_snooze(text: str, expected: Snooze) -> None:
    assert p(text) == expected


@pytest.mark.parametrize(
    "text, message, usage",
    [
        ("frobnicate", "I don't know the command `frobnicate`", "/modeldeck help"),
        ("promte fraud 1.0 to prod", "I don't know the command `promte`", "did you mean `promote`"),
        ("promote", "`promote` needs a model name", "/modeldeck promote MODEL VERSION to ENV"),
        ("promote fraud-detector", "`promote` needs a version", "for example"),
        ("promote fraud-detector to prod", "needs a version before `to`", "promote MODEL VERSION"),
        ("promote fraud-detector 1.4.0 to", "needs an environment", "promote MODEL VERSION"),
        ("promote fraud_detector! 1.4.0 to prod", "is not a model name", "promote MODEL VERSION"),
        ("promote fraud-detector 1.4/0 to prod", "is not a version", "promote MODEL VERSION"),
        ("rollback", "`rollback` needs a model name", "rollback MODEL in ENV"),
        ("rollback fraud-detector in", "needs an environment", "rollback MODEL in ENV"),
        ("rollback fraud-detector in prod to", "needs a version", "rollback MODEL in ENV"),
        ("versions", "`versions` needs a model name", "versions MODEL"),
        ("status a b", "did not expect `b`", "status [MODEL]"),
        ("history fraud-detector in prod extra", "did not expect `extra`", "history MODEL"),
        ("snooze", "needs an alert number", "snooze ALERT DURATION"),
        ("snooze abc 2h", "`abc` is not an alert number", "snooze ALERT DURATION"),
        ("snooze 42", "needs a duration", "snooze ALERT DURATION"),
        ("snooze 42 soon", "'soon' is not a duration", "snooze ALERT DURATION"),
        ("snooze 42 30s", "'30s' is not a duration", "minutes, hours, days or weeks"),
        ("snooze 42 5w", "longer than the 30-day maximum", "snooze ALERT DURATION"),
        ("snooze 42 0m", "at least 1 minute", "snooze ALERT DURATION"),
        ("snooze 99999999999999999999999 2h", "is not an alert number", "snooze ALERT"),
        ("snooze 2147483648 2h", "is not an alert number", "snooze ALERT"),
        ("snooze 0 2h", "`0` is not an alert number", "snooze ALERT"),
        ("snooze ²2 2h", "is not an alert number", "snooze ALERT"),
        (
            "rollback fraud-detector in prod 1.0.0",
            "did you mean `to 1.0.0`?",
            "production to 1.0.0",
        ),
        ("rollback fraud-detector prod v1.2.0-rc1 because", "did you mean `to v1.2.0-rc1`", "to"),
        ("rollback fraud-detector in prod 3", "did you mean `to 3`?", "because 3"),
        ("models please", "did not expect `please`", "/modeldeck models"),
    ],
)
def test_refusals_explain_and_show_usage(text: str, message: str, usage: str) -> None:
    with pytest.raises(ParseError) as info:
        p(text)
    assert message in info.value.message
    assert info.value.hint is not None and usage in info.value.hint
    assert isinstance(info.value, InvalidInput)  # the one error handler treats it as such


def test_reason_length_is_bounded() -> None:
    with pytest.raises(ParseError, match="keep it under 1000"):
        p("promote fraud-detector 1.4.0 to prod because " + "x" * 1001)


def test_a_shell_is_never_a_verb() -> None:
    for text in ("rm -rf /", "`kubectl delete ns prod`", "$(reboot)", "promote; drop table"):
        with pytest.raises(ParseError):
            p(text)
