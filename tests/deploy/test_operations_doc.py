"""Code, manifests and the image point people at sections of docs/operations.md ("see
docs/operations.md, Dashboard sign-in"): every such section exists, and so does every
in-page link of the page."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
POINTER = re.compile(r"docs/operations\.md, ([A-Z][\w-]*(?: [\w-]+)*)")


def headings() -> set[str]:
    return {m.strip() for m in re.findall(r"^#+ (.+)$", OPERATIONS.read_text(), flags=re.M)}


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_pointer_into_the_operations_guide_names_a_section() -> None:
    pointers: dict[str, list[str]] = {}
    files = [p for d in ("core", "bot", "dashboard", "deploy") for p in (ROOT / d).rglob("*")]
    for path in files:
        if path.is_file() and path.suffix in {".py", ".yaml", ".yml", ""}:
            for section in POINTER.findall(path.read_text(errors="replace")):
                pointers.setdefault(section, []).append(str(path.relative_to(ROOT)))
    assert {"Dashboard sign-in", "Data store", "Kubernetes"} <= set(pointers)
    missing = {s: where for s, where in pointers.items() if s not in headings()}
    assert missing == {}


def test_in_page_links_of_the_operations_guide_resolve() -> None:
    anchors = {anchor(h) for h in headings()}
    links = re.findall(r"\]\(#([^)]+)\)", OPERATIONS.read_text())
    assert links and [link for link in links if link not in anchors] == []
