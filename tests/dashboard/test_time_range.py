"""The time range lives in the URL as well as the session: links, reloads and page switches
keep it; the audit log's page number belongs to one range and search."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import Actor, Role
from tests.dashboard.conftest import app, button, no_exceptions, open_page, texts
from tests.dashboard.test_overview import grid
from tests.dashboard.world import World


def test_a_link_with_a_range_opens_that_range(seeded: World) -> None:
    at = app()
    at.query_params["range"] = "7d"
    at.run()
    no_exceptions(at)
    assert at.selectbox(key="range").value == "7d"
    at.switch_page("views/audit.py")
    at.run()  # switch_page keeps the session's choice and writes it back to the URL
    assert "in the last 7 days" in texts(at)
    assert at.query_params["range"] == "7d"


def test_choosing_a_range_puts_it_in_the_url(seeded: World) -> None:
    at = open_page("drift", state={"model": "fraud-detector", "env": "production"})
    assert at.query_params["range"] == "30d"  # the default is written too: a copyable link
    at.selectbox(key="range").set_value("90d").run()
    assert at.query_params["range"] == "90d"
    assert at.query_params["model"] == "fraud-detector"  # the picker's parameters stay
    # A reload is a new session that knows only the URL.
    again = app()
    again.query_params.update(at.query_params)
    again.run()
    again.switch_page("views/drift.py")
    again.run()
    no_exceptions(again)
    assert again.selectbox(key="range").value == "90d"


def test_an_unknown_range_in_the_url_falls_back(seeded: World) -> None:
    at = app()
    at.query_params["range"] = "forever"
    at.run()
    no_exceptions(at)
    assert at.selectbox(key="range").value == "30d"
    assert at.query_params["range"] == "30d"


def test_overview_links_carry_the_range(seeded: World) -> None:
    at = open_page("overview", state={"range": "90d"})
    links = list(grid(at)["Model"])
    assert links and all(link.endswith("&range=90d") for link in links), links[:2]


def test_audit_page_number_resets_when_the_range_changes(
    seeded: World, sqlite_engine: Engine
) -> None:
    robot = Actor(name="cli:robot", role=Role.admin, via="cli")
    with Session(sqlite_engine) as s:
        for i in range(150):
            audit.record(s, actor=robot, action="test.touch", target=f"thing:{i}")
        s.commit()
    at = open_page("audit", state={"range": "1y"})
    assert "page 1 of 2" in texts(at)
    button(at, "Older →").click().run()
    assert "page 2 of 2" in texts(at)
    at.selectbox(key="range").set_value("90d").run()
    assert "page 1 of 2" in texts(at)
    button(at, "Older →").click().run()
    at.text_input(key="audit_action").input("test.touch")
    button(at, "Search").click().run()
    assert "150 events · page 1 of 2" in texts(at)  # a new search starts at its first page
