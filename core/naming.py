"""Names users type in Slack, the CLI and URLs: one strict shape everywhere.

Only ASCII is allowed, so a Cyrillic 'а' that looks like a Latin 'a' can never create a second
"fraud-detector"; the error names the offending character so the user can see why.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

MAX_NAME = 64
SLUG_RE = re.compile(r"\A[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?\Z")
VERSION_RE = re.compile(r"\A[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62}[A-Za-z0-9])?\Z")

_SLUG_RULE = (
    "must be 1-64 lower-case ASCII letters, digits, '.', '_' or '-', "
    "starting and ending with a letter or digit"
)
_VERSION_RULE = (
    "must be 1-64 ASCII letters, digits, '.', '_', '+' or '-', "
    "starting and ending with a letter or digit"
)


def _first_problem(value: str, allowed: str) -> str:
    """Say which character breaks the rule: a person cannot see a lookalike or a tab."""
    for char in value:
        if char in allowed:
            continue
        if char.isspace():
            return f"; it contains whitespace ({char!r})"
        if not char.isascii():
            name = unicodedata.name(char, "unnamed character")
            return f"; it contains {char!r} (U+{ord(char):04X} {name}), which is not ASCII"
        return f"; it contains {char!r}"
    return ""


_SLUG_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"
_VERSION_CHARS = _SLUG_CHARS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ+"


def check_slug(value: str) -> str:
    """Lower-case ASCII letters, digits, '.', '_' and '-', 1 to 64 characters."""
    if not SLUG_RE.fullmatch(value):
        raise ValueError(_SLUG_RULE + _first_problem(value, _SLUG_CHARS))
    return value


def check_version(value: str) -> str:
    """Versions allow upper case and '+' (semver build metadata) but nothing else exotic."""
    if not VERSION_RE.fullmatch(value):
        raise ValueError(_VERSION_RULE + _first_problem(value, _VERSION_CHARS))
    return value


Slug = Annotated[str, StringConstraints(max_length=MAX_NAME), AfterValidator(check_slug)]
VersionStr = Annotated[str, StringConstraints(max_length=MAX_NAME), AfterValidator(check_version)]


def check_line(value: str) -> str:
    """One line of text: no control characters (newlines, tabs, NUL)."""
    for char in value:
        if unicodedata.category(char) == "Cc":
            raise ValueError(f"must be one line of text without control characters ({char!r})")
    return value


def check_text(value: str) -> str:
    """Free text: newlines and tabs are fine, other control characters (NUL...) are not."""
    for char in value:
        if unicodedata.category(char) == "Cc" and char not in "\n\r\t":
            raise ValueError(f"must be text without control characters ({char!r})")
    return value


# PostgreSQL refuses NUL in text columns; refusing control characters here turns that
# database error into a 422 that names the field.
Line = Annotated[str, AfterValidator(check_line)]
Text = Annotated[str, AfterValidator(check_text)]
