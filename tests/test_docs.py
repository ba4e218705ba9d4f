"""The docs keep up with the code: every REST endpoint is listed in docs/api.md, and every
relative link and image in the Markdown docs points at a file that exists."""

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


def test_relative_links_and_images_resolve() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            path = target.split("#")[0]
            if not path or re.match(r"[a-z]+:", path):
                continue  # an anchor in the same page, or a URL
            if not (doc.parent / path).exists():
                broken.append(f"{doc.relative_to(ROOT)} → {target}")
    assert broken == []
