"""The demo's folder (.modeldeck/): its state file, its lock, its config and its ports.

The state file says whether the world in the folder is complete. It is written as
"building" before seeding starts and as "ready" only once everything was built, so a run
interrupted by Ctrl-C (or a crash, or a full disk) leaves "building" behind and the next run
rebuilds from scratch instead of serving half a world. A folder with a database but no state
file was not made by the demo (`.modeldeck/` is also the default home of a real SQLite
database): the demo refuses to touch it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import yaml

from modeldeck.core.cli.up import free_port
from modeldeck.core.errors import ConfigError, Conflict

DEMO_DIR = Path(".modeldeck")
STATE_FILE = "demo.json"
LOCK_FILE = "demo.lock"
CONFIG_FILE = "modeldeck.yaml"
WORLD_VERSION = 1  # bump when the generated world changes: older folders are rebuilt
READY, BUILDING = "ready", "building"


@dataclass(frozen=True)
class Ports:
    api: int
    dashboard: int
    exporter: int
    prometheus: int
    moved: tuple[str, ...]  # "API: 8000 is in use, using 8123"


class Home:
    """The demo folder. Use as a context manager: it holds the folder's lock."""

    def __init__(self, base: Path = DEMO_DIR) -> None:
        self.base = base.absolute()
        self._lock: IO[str] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Home:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create the folder (clear message if impossible) and take its lock."""
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            handle = (self.base / LOCK_FILE).open("a+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the demo folder {self.base}: {exc.strerror or exc}",
                hint="run `modeldeck demo` from a folder you can write to",
            ) from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise Conflict(
                f"a demo is already running from {self.base} ({owner})",
                hint="use that one, stop it (Ctrl-C), or run the demo from another folder",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._lock = handle

    def close(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # --- the state of the world ------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.base / CONFIG_FILE

    def state(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.base / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def is_ready(self) -> bool:
        state = self.state()
        return bool(state and state.get("state") == READY and state.get("world") == WORLD_VERSION)

    def foreign(self) -> bool:
        """Does the folder hold things the demo did not make (a real database)?"""
        if self.state() is not None:
            return False
        return any(p.name not in (LOCK_FILE,) for p in self.base.iterdir())

    def why_rebuild(self) -> str | None:
        """None when the world is complete; else the reason to build it (again)."""
        state = self.state()
        if state is None:
            return "no demo world yet"
        if state.get("state") != READY:
            return "the last build did not finish (interrupted?)"
        if state.get("world") != WORLD_VERSION:
            return "the demo world changed since this one was built"
        return None

    def wipe(self) -> None:
        """Delete everything but the lock (which this process holds)."""
        if self.foreign():
            raise ConfigError(
                f"{self.base} holds files the demo did not create (a modeldeck "
                "database?); not deleting them",
                hint="move that folder away or run the demo from another folder",
            )
        for path in self.base.iterdir():
            if path.name == LOCK_FILE:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def mark(self, state: str, **extra: Any) -> None:
        data = {**(self.state() or {}), "state": state, "world": WORLD_VERSION, **extra}
        tmp = self.base / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(data, indent=2, default=_iso), encoding="utf-8")
        tmp.replace(self.base / STATE_FILE)

    def write_config(self, config: dict[str, Any]) -> Path:
        tmp = self.base / f".{CONFIG_FILE}.tmp"
        tmp.write_text(
            "# Written by `modeldeck demo` on every start (ports may change).\n"
            + yaml.safe_dump(config, sort_keys=False),
            encoding="utf-8",
        )
        tmp.replace(self.config_path)
        return self.config_path


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def pick_ports(
    api: int, dashboard: int = 8501, exporter: int = 9400, prometheus: int = 9090
) -> Ports:
    """The wanted ports, or free ones instead; `moved` says which changed and why."""
    taken: set[int] = set()
    chosen: dict[str, int] = {}
    moved: list[str] = []
    for name, wanted in (
        ("API", api),
        ("dashboard", dashboard),
        ("GPU exporter", exporter),
        ("Prometheus", prometheus),
    ):
        port = free_port("127.0.0.1", wanted, avoid=taken)
        if wanted and port != wanted:
            moved.append(f"{name}: port {wanted} is in use, using {port}")
        taken.add(port)
        chosen[name] = port
    return Ports(
        api=chosen["API"],
        dashboard=chosen["dashboard"],
        exporter=chosen["GPU exporter"],
        prometheus=chosen["Prometheus"],
        moved=tuple(moved),
    )
