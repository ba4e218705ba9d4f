"""The wheel is complete: build it, install it in a fresh virtualenv, import every module,
run the console script and migrate a database from the installed copy.

A subpackage missing from `[tool.setuptools] packages` in pyproject.toml, or a data file
missing from package-data (alembic's script.py.mako, the migrations), fails here.
The build is offline (`--no-isolation`, setuptools and wheel come with the dev extras); the
fresh venv reuses this venv's dependencies through a path file and gets the wheel itself
with `--no-deps`, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# The module-scoped fixture is built once: keep these tests on one xdist worker.
pytestmark = pytest.mark.xdist_group("wheel")

ROOT = Path(__file__).parents[1]
SOURCES = {"core": "modeldeck.core", "bot": "modeldeck.bot", "dashboard": "modeldeck.dashboard"}
# Scripts that only run inside another program (alembic's env.py needs alembic's context);
# the wheel must contain them, which test_wheel_contains_... checks.
NOT_IMPORTABLE = {"modeldeck.core.migrations.env"}


def expected_modules() -> list[str]:
    """Every module of the source tree, named as it is imported."""
    names = []
    for folder, package in SOURCES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([package, *parts])
            if name not in NOT_IMPORTABLE:
                names.append(name)
    return names


def test_pyproject_lists_every_package() -> None:
    """The quick check (the wheel tests below are the thorough one)."""
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join([package, *init.parent.relative_to(ROOT / folder).parts])
        for folder, package in SOURCES.items()
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - on_disk == set(), "these listed packages do not exist"


def sh(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build from a copy of the sources, so the working tree gets no build/ or egg-info."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in SOURCES:
        shutil.copytree(
            ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    sh(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", work / "dist", src)
    (built,) = (work / "dist").glob("modeldeck-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel installed (--no-deps) and this venv's site-packages on the
    path for the dependencies. The editable install of the working tree is not visible there:
    path files (.pth) are only run from site directories, not from a directory they add."""
    home = tmp_path_factory.mktemp("venv") / "fresh"
    sh(sys.executable, "-m", "venv", home)
    python = home / "bin" / "python"
    fresh_site = Path(
        sh(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    )
    (fresh_site / "zz_modeldeck_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    sh(python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel)
    yield home


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MODELDECK_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    return {**env, **extra}


@pytest.mark.slow
def test_wheel_contains_the_migrations_and_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "modeldeck/core/py.typed",
        "modeldeck/core/migrations/env.py",
        "modeldeck/core/migrations/script.py.mako",
        "modeldeck/core/migrations/versions/0001_initial.py",
    ):
        assert required in names, required
    entry_points = zipfile.ZipFile(wheel).read("modeldeck-0.1.0.dist-info/entry_points.txt")
    assert b"modeldeck = modeldeck.core.cli.main:main" in entry_points


@pytest.mark.slow
def test_every_module_imports_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    modules = expected_modules()
    assert "modeldeck.core.cli.main" in modules and len(modules) > 50
    script = (
        "import importlib, json, sys, traceback\n"
        "import modeldeck.core\n"
        "failed = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except BaseException as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps({'failed': failed, 'file': modeldeck.core.__file__}))\n"
    )
    result = sh(
        venv / "bin" / "python",
        "-c",
        script,
        json.dumps(modules),
        cwd=tmp_path,
        env=clean_env(),
        timeout=900,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert str(venv) in report["file"], "imported the working tree, not the wheel"
    assert report["failed"] == {}, (
        "modules missing from the wheel (add the package to [tool.setuptools] packages): "
        f"{report['failed']}"
    )


@pytest.mark.slow
def test_console_script_and_migrations_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    modeldeck = venv / "bin" / "modeldeck"
    assert "register" in sh(modeldeck, "--help", cwd=tmp_path, env=clean_env()).stdout
    env = clean_env(MODELDECK_DATABASE_URL=f"sqlite:///{tmp_path}/wheel.db")
    upgraded = json.loads(sh(modeldeck, "--json", "db", "upgrade", cwd=tmp_path, env=env).stdout)
    assert upgraded["before"] is None and upgraded["after"]
    registered = json.loads(
        sh(
            modeldeck, "--json", "register", "fraud", "1.0", "--image", "i:1", cwd=tmp_path, env=env
        ).stdout
    )
    assert registered["model"] == "fraud"
    where = sh(
        venv / "bin" / "python",
        "-c",
        "import modeldeck.core.db as d; print(d.MIGRATIONS_DIR)",
        cwd=tmp_path,
        env=env,
    ).stdout.strip()
    assert where.startswith(str(venv))
