"""The demo folder: lock, state file, refusal to touch what the demo did not make, ports."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from modeldeck.core.demo import home
from modeldeck.core.errors import ConfigError, Conflict


def test_a_second_demo_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    with home.Home(tmp_path / ".modeldeck"):
        with pytest.raises(Conflict) as refused:
            home.Home(tmp_path / ".modeldeck").open()
    assert "already running" in refused.value.message
    assert "pid" in refused.value.message
    with home.Home(tmp_path / ".modeldeck"):  # free again once the first one closed
        pass


def test_a_folder_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".modeldeck").write_text("not a folder")
    with pytest.raises(ConfigError) as failed:
        home.Home(tmp_path / ".modeldeck").open()
    assert f"cannot write the demo folder {tmp_path / '.modeldeck'}" in failed.value.message
    assert failed.value.hint and "folder you can write to" in failed.value.hint


def test_an_interrupted_build_is_rebuilt_and_a_finished_one_is_kept(tmp_path: Path) -> None:
    with home.Home(tmp_path) as folder:
        assert folder.why_rebuild() == "no demo world yet"
        folder.mark(home.BUILDING)
        (tmp_path / "modeldeck.db").write_text("half a world")
        assert folder.why_rebuild() == "the last build did not finish (interrupted?)"
        assert not folder.foreign()
        folder.wipe()
        assert sorted(p.name for p in tmp_path.iterdir()) == [home.LOCK_FILE]
        folder.mark(home.READY)
        assert folder.why_rebuild() is None and folder.is_ready()
        folder.mark(home.READY, world=home.WORLD_VERSION - 1)
        assert folder.why_rebuild() == "the demo world changed since this one was built"


def test_a_real_database_in_the_folder_is_never_deleted(tmp_path: Path) -> None:
    (tmp_path / "modeldeck.db").write_text("someone's real data")
    with home.Home(tmp_path) as folder:
        assert folder.foreign()
        with pytest.raises(ConfigError) as refused:
            folder.wipe()
    assert "holds files the demo did not create" in refused.value.message
    assert (tmp_path / "modeldeck.db").read_text() == "someone's real data"


def test_taken_ports_are_replaced_and_reported() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = home.pick_ports(busy, dashboard=0, exporter=0, prometheus=0)
    assert ports.api != busy
    assert ports.moved == (f"API: port {busy} is in use, using {ports.api}",)
    assert len({ports.api, ports.dashboard, ports.exporter, ports.prometheus}) == 4
