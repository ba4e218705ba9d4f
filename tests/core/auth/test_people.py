"""`roles.people`: one person behind identities on several interfaces (the two-person rule)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldeck.core.auth import service as auth
from modeldeck.core.config import RolesConfig, load_settings
from modeldeck.core.errors import ConfigError

PEOPLE = {
    "ana": {
        "slack": ["U01ANA"],
        "emails": ["Ana@Acme.io"],
        "tokens": ["ana-laptop"],
        "cli": ["ana"],
    },
    "ben": {"slack": ["U01BEN"]},
}


@pytest.mark.parametrize(
    ("name", "person"),
    [
        ("slack:U01ANA", "ana"),
        ("dashboard:ana@acme.io", "ana"),  # e-mails compare without case
        ("dashboard:ANA@ACME.IO", "ana"),
        ("token:ana-laptop", "ana"),
        ("cli:ana", "ana"),
        ("slack:U01BEN", "ben"),
        ("cli:ben", "cli:ben"),  # not listed for ben: the name itself
        ("slack:U01ana", "slack:U01ana"),  # Slack ids are exact
        ("token:ana", "token:ana"),  # a token named like a CLI user is not that user
        ("modeldeck-auto-rollback", "modeldeck-auto-rollback"),
        ("carol", "carol"),
    ],
)
def test_person_of_maps_each_interface_to_its_list(name: str, person: str) -> None:
    assert auth.person_of(RolesConfig(people=PEOPLE), name) == person


def test_same_person() -> None:
    roles = RolesConfig(people=PEOPLE)
    assert auth.same_person(roles, "token:ana-laptop", "slack:U01ANA")
    assert not auth.same_person(roles, "slack:U01ANA", "slack:U01BEN")
    assert auth.same_person(RolesConfig(), "cli:x", "cli:x")
    assert not auth.same_person(RolesConfig(), "cli:x", "slack:x")


@pytest.mark.parametrize(
    ("people", "expected"),
    [
        (
            {"ana": {"slack": ["U1"]}, "ben": {"slack": ["U1"]}},
            "people.ben.slack: 'U1' already belongs to ana; an identity may belong to only "
            "one person",
        ),
        (
            {"ana": {"emails": ["a@x.io"]}, "ben": {"emails": ["A@X.IO"]}},
            "people.ben.emails: 'A@X.IO' already belongs to ana",
        ),
        ({"ana": {"cli": [""]}}, "people.ana.cli: empty identity"),
        ({"ana": {"phone": ["1"]}}, "unknown key"),
        ({"Ana Smith": {"cli": ["ana"]}}, "people.Ana Smith"),
    ],
)
def test_bad_people_mappings_are_refused_naming_the_key(
    tmp_path: Path, people: dict[str, object], expected: str
) -> None:
    path = tmp_path / "modeldeck.yaml"
    path.write_text(yaml.safe_dump({"roles": {"people": people}}))
    with pytest.raises(ConfigError, match="roles") as exc:
        load_settings(path)
    assert expected in str(exc.value)


def test_the_same_identity_twice_for_one_person_is_fine() -> None:
    roles = RolesConfig(people={"ana": {"slack": ["U1", "U1"], "cli": ["U1"]}})
    assert auth.person_of(roles, "cli:U1") == "ana"
