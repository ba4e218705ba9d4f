"""Reads deploy/Dockerfile without Docker: its stages and instructions, the runtime stage's
environment, working directory and user, and who owns the directories its RUN steps create.

The RUN interpreter knows the commands that create users and directories (groupadd, useradd,
install -d, mkdir, chown); anything else is ignored. It is enough to tell whether a volume's
mount point exists in the image and belongs to the user the processes run as.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath

ROOT = (0, 0)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        """The variables ENV sets (KEY=VALUE pairs, or the old `ENV KEY VALUE`)."""
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            words = shlex.split(args)
            if words and "=" not in words[0]:
                out[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                key, _, value = word.partition("=")
                out[key] = value
        return out

    def workdir(self) -> str:
        return self.all("WORKDIR")[-1]


def parse(text: str) -> list[Stage]:
    """The stages of a Dockerfile, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(_without_comments(text)))
    stages: list[Stage] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


def _without_comments(text: str) -> list[str]:
    # A comment line inside a continued instruction is dropped too (as Docker does).
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


@dataclass
class Filesystem:
    """What the RUN steps before USER leave behind: users, groups and directory owners."""

    groups: dict[str, int] = field(default_factory=dict)
    users: dict[str, tuple[int, int]] = field(default_factory=dict)
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)

    def uid(self, who: str) -> int:
        return int(who) if who.isdigit() else self.users[who][0]

    def gid(self, who: str) -> int:
        return int(who) if who.isdigit() else self.groups[who]

    def resolve_user(self, spec: str) -> tuple[int, int]:
        """USER name, uid, name:group or uid:gid as numbers."""
        user, _, group = spec.partition(":")
        uid = self.uid(user)
        if group:
            return uid, self.gid(group)
        return self.users[user] if user in self.users else (uid, uid)

    def mkdir(self, path: str, owner: tuple[int, int]) -> None:
        for parent in reversed(PurePosixPath(path).parents):
            self.owners.setdefault(str(parent), ROOT)
        self.owners[path] = owner


def filesystem(stage: Stage) -> Filesystem:
    """Interpret the RUN steps of `stage` that run as root (before its first USER)."""
    fs = Filesystem()
    for keyword, args in stage.instructions:
        if keyword == "USER":
            break
        if keyword == "RUN":
            for command in re.split(r"&&|;", args):
                words = shlex.split(command)
                if words:
                    _run(fs, words)
    return fs


def _run(fs: Filesystem, words: list[str]) -> None:
    program, args = words[0], words[1:]
    options, paths = _options(args)
    if program == "groupadd":
        fs.groups[paths[-1]] = int(options["--gid"])
    elif program == "useradd":
        uid, gid = int(options["--uid"]), fs.gid(options["--gid"])
        fs.users[paths[-1]] = (uid, gid)
        if "--create-home" in options:
            fs.mkdir(options["--home-dir"], (uid, gid))
    elif program == "install" and "-d" in options:
        owner = (fs.uid(options.get("-o", "0")), fs.gid(options.get("-g", "0")))
        for path in paths:
            fs.mkdir(path, owner)
    elif program == "mkdir":
        for path in paths:
            fs.mkdir(path, ROOT)
    elif program == "chown":
        user, _, group = paths[0].partition(":")
        for path in paths[1:]:
            fs.owners[path] = (fs.uid(user), fs.gid(group) if group else fs.owners[path][1])


# Options of the commands above that take a value; every other option is a flag.
WITH_VALUE = {"--gid", "--uid", "--home-dir", "-o", "-g", "-m", "--shell"}


def _options(args: list[str]) -> tuple[dict[str, str], list[str]]:
    options: dict[str, str] = {}
    paths: list[str] = []
    words = iter(args)
    for word in words:
        if word in WITH_VALUE:
            options[word] = next(words)
        elif word.startswith("-"):
            options[word] = ""
        else:
            paths.append(word)
    return options, paths
