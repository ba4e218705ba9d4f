from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from modeldeck.core.naming import Line, Slug, Text, VersionStr


class Names(BaseModel):
    name: Slug = "ok"
    version: VersionStr = "1.0.0"
    line: Line = ""
    text: Text = ""


def error_of(**fields: str) -> str:
    with pytest.raises(ValidationError) as info:
        Names(**fields)
    (err,) = info.value.errors()
    return str(err["msg"])


@pytest.mark.parametrize(
    "name", ["fraud-detector", "a", "x1", "churn_v2", "eta.regressor", "a" * 64, "0abc9"]
)
def test_valid_slugs(name: str) -> None:
    assert Names(name=name).name == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("fraud detector", "whitespace (' ')"),
        ("fraud\tdetector", "whitespace ('\\t')"),
        ("fraud-detector\n", "whitespace ('\\n')"),
        ("frаud", "U+0430 CYRILLIC SMALL LETTER A"),  # Cyrillic а, looks like Latin a
        ("ｆraud", "U+FF46 FULLWIDTH LATIN SMALL LETTER F"),
        ("Fraud", "it contains 'F'"),
        ("fraud/detector", "it contains '/'"),
        ("-fraud", "starting and ending with a letter or digit"),
        ("fraud-", "starting and ending with a letter or digit"),
        ("", "must be 1-64"),
    ],
)
def test_malformed_slugs_say_why(name: str, says: str) -> None:
    assert says in error_of(name=name)


def test_overlong_names_are_refused_before_the_pattern() -> None:
    assert "at most 64 characters" in error_of(name="a" * 300)
    assert "at most 64 characters" in error_of(version="1" * 65)


@pytest.mark.parametrize("version", ["1.4.0", "2026-11-23", "1.0.0+build.7", "V2", "rc_1"])
def test_valid_versions(version: str) -> None:
    assert Names(version=version).version == version


@pytest.mark.parametrize(
    ("version", "says"),
    [("1.0 beta", "whitespace"), ("1.0.０", "U+FF10"), ("1.0.0-", "ending"), ("v1/2", "'/'")],
)
def test_malformed_versions(version: str, says: str) -> None:
    assert says in error_of(version=version)


def test_line_and_text_refuse_control_characters() -> None:
    assert "control characters" in error_of(line="ghcr.io/acme\nfraud")
    assert "control characters" in error_of(text="nul\x00inside")
    assert Names(text="two\nlines\tand a tab").text == "two\nlines\tand a tab"
