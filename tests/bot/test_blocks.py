"""core/notify/blocks.py: outbox messages rendered from the current database state."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.config import Settings
from modeldeck.core.errors import NotFound
from modeldeck.core.notify import blocks, kit
from modeldeck.core.notify.actions import ActionId
from modeldeck.core.notify.models import OutboxMessage
from modeldeck.core.rollouts import service as rollouts
from modeldeck.core.rollouts.models import Deployment
from tests.bot.conftest import SEED, seed_world
from tests.bot.slack import has_button


@pytest.fixture
def world(settings: Settings, sqlite_engine: Engine) -> Session:
    seed_world(sqlite_engine, settings)
    return Session(sqlite_engine, expire_on_commit=False)


def render(session: Session, settings: Settings, kind: str, **payload: object) -> dict[str, object]:
    return blocks.render(
        session, settings, OutboxMessage(channel="slack", kind=kind, payload=dict(payload))
    )


def test_an_approval_request_is_drawn_from_the_state_at_delivery(
    world: Session, settings: Settings
) -> None:
    dep = rollouts.promote(
        world,
        settings=settings,
        model="fraud-detector",
        version="1.2.0",
        environment="production",
        actor=SEED,
        reason="<" * 1999,
    )
    waiting = render(world, settings, "approval_request", deployment_id=dep.id, text="old")
    assert has_button(waiting["blocks"], ActionId.approve)  # type: ignore[arg-type]
    reason = next(b for b in waiting["blocks"] if "*Reason*" in json.dumps(b))  # type: ignore[attr-defined]
    assert len(reason["text"]["text"]) <= 3000 and reason["text"]["text"].endswith("…")
    rollouts.reject(world, settings=settings, deployment_id=dep.id, actor=SEED)
    # Delivered late (Slack was down): the message says what is true now, without buttons.
    late = render(world, settings, "approval_request", deployment_id=dep.id, text="old")
    assert not has_button(late["blocks"], ActionId.approve)  # type: ignore[arg-type]
    assert "rejected" in str(late["text"])


@pytest.mark.parametrize("kind", ["deployment_update", "rollout_update"])
def test_rollout_updates_render_the_deployment(
    world: Session, settings: Settings, kind: str
) -> None:
    dep = world.exec(select(Deployment).order_by(col(Deployment.id).desc())).first()
    assert dep is not None
    rendered = render(world, settings, kind, deployment_id=dep.id)
    assert "Promote fraud-detector 1.2.0 → staging" in str(rendered["text"])


def test_every_block_is_within_slack_limits(world: Session, settings: Settings) -> None:
    for dep in world.exec(select(Deployment)).all():
        rendered = render(world, settings, "deployment_update", deployment_id=dep.id)
        assert len(rendered["blocks"]) <= 50  # type: ignore[arg-type]
        for block in rendered["blocks"]:  # type: ignore[attr-defined]
            if block["type"] == "header":
                assert len(block["text"]["text"]) <= 150


def test_unknown_kinds_fall_back_to_their_text_and_missing_rows_say_so(
    world: Session, settings: Settings
) -> None:
    fallback = render(world, settings, "something_new", text="hello <team>")
    assert fallback["text"] == "hello <team>"
    assert "hello &lt;team&gt;" in json.dumps(fallback["blocks"])
    with pytest.raises(NotFound, match="no alert with id 999"):
        render(world, settings, "alert", alert_id=999)


def test_people_and_dates_read_well_on_a_phone() -> None:
    assert kit.mention("slack:U123") == "<@U123>"
    assert kit.mention("cli:alice") == "`cli:alice`"
    assert kit.mention(None) == "-"
    assert kit.clip("abcdef", 4) == "abc…"


def test_the_one_error_handler_explains_domain_errors_and_apologises_for_bugs() -> None:
    from modeldeck.bot.errors import friendly
    from modeldeck.core.errors import Conflict, Forbidden

    refused = friendly(Forbidden("promote models needs the deployer role", hint="ask an admin"))
    assert refused["text"] == ":no_entry: promote models needs the deployer role (ask an admin)"
    assert friendly(Conflict("busy"))["text"].startswith(":warning: busy")
    bug = friendly(KeyError("deployment_id"))
    assert "Something went wrong inside modeldeck" in bug["text"]
    assert "deployment_id" not in bug["text"]  # internals stay in the log
