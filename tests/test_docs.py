"""The docs keep up with the code: every REST endpoint is listed in docs/api.md."""

from __future__ import annotations

import re
from pathlib import Path

from modeldeck.core.api.app import create_app
from modeldeck.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_endpoint_is_in_the_api_docs() -> None:
    spec = create_app(Settings(database_url="sqlite://")).openapi()
    served = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    text = (ROOT / "docs" / "api.md").read_text()
    table = text.split("<!-- endpoints:start -->")[1].split("<!-- endpoints:end -->")[0]
    listed = set(re.findall(r"^\| `([A-Z]+)` \| `([^`]+)` \|", table, flags=re.M))
    assert served - listed == set(), "run scripts/api-docs to list the new endpoints"
    assert listed - served == set(), "docs/api.md lists endpoints the API no longer serves"
