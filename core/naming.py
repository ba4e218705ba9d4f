"""Names users type in Slack, the CLI and URLs: one strict shape everywhere."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
VERSION_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._+-]{0,62}[A-Za-z0-9])?$")


def check_slug(value: str) -> str:
    """Lower-case ASCII letters, digits, '.', '_' and '-', 1 to 64 characters."""
    if not SLUG_RE.fullmatch(value):
        raise ValueError(
            "must be 1-64 lower-case ASCII letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return value


def check_version(value: str) -> str:
    """Versions allow upper case and '+' (semver build metadata) but nothing else exotic."""
    if not VERSION_RE.fullmatch(value):
        raise ValueError(
            "must be 1-64 ASCII letters, digits, '.', '_', '+' or '-', "
            "starting and ending with a letter or digit"
        )
    return value


Slug = Annotated[str, StringConstraints(max_length=64), AfterValidator(check_slug)]
VersionStr = Annotated[str, StringConstraints(max_length=64), AfterValidator(check_version)]
