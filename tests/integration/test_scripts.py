"""scripts/install and .ci/run as real bash processes. The commands they drive (python3, apt-get,
sudo, pip) are small stand-ins on PATH that record how they were called: the tests must run
on a machine without root or network, and the second install run must only check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

# A Debian python3.11 whose venv module lacks ensurepip until python3.11-venv is installed.
FAKE_PYTHON = r"""#!/usr/bin/env bash
echo "python $*" >> "$STATE/calls"
case "$1" in
  --version) echo "Python 3.11.2" ;;
  -c)
    case "$2" in
      *ensurepip*) [ -e "$STATE/venv-package" ] ;;
      *print*) echo "3.11" ;;
      *) exit 0 ;;
    esac ;;
  -m)
    [ "$2" = venv ] || exit 1
    mkdir -p .venv/bin
    if [ ! -e "$STATE/venv-package" ]; then
      echo "ensurepip is not available" >&2
      exit 1
    fi
    cp "$STATE/venv-python" .venv/bin/python
    printf '#!/usr/bin/env bash\necho "modeldeck 0.1.0"\n' > .venv/bin/modeldeck
    chmod +x .venv/bin/python .venv/bin/modeldeck ;;
esac
"""
VENV_PYTHON = """#!/usr/bin/env bash
echo "venv-python $*" >> "$STATE/calls"
"""
HALF_MADE_VENV_PYTHON = """#!/usr/bin/env bash
echo "No module named pip" >&2; exit 1
"""
APT_GET = """#!/usr/bin/env bash
echo "apt-get $*" >> "$STATE/calls"
case " $* " in *" python3.11-venv "*) touch "$STATE/venv-package" ;; esac
"""
SUDO = """#!/usr/bin/env bash
exec "$@"
"""


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the scripts in an empty project folder, with the stand-ins on PATH."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / ".ci").mkdir()
    shutil.copy(ROOT / "scripts" / "install", repo / "scripts" / "install")
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    executable(bin_dir / "python3", FAKE_PYTHON)
    executable(bin_dir / "apt-get", APT_GET)
    executable(bin_dir / "sudo", SUDO)
    for present in ("chromium", "prometheus"):
        executable(bin_dir / present, "#!/bin/sh\n")
    executable(bin_dir / "fc-list", "#!/bin/sh\necho 'DejaVuSans.ttf: DejaVu Sans:style=Book'\n")
    executable(state / "venv-python", VENV_PYTHON)
    return repo


def run(
    repo: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    tmp = repo.parent
    base = {
        "PATH": f"{tmp / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp),
        "STATE": str(tmp / "state"),
    }
    return subprocess.run(
        list(args),
        cwd=repo,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def calls(repo: Path, prefix: str) -> list[str]:
    log = repo.parent / "state" / "calls"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith(prefix)]


def test_install_without_venv_support_says_which_package_to_install(checkout: Path) -> None:
    result = run(checkout, "scripts/install")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "python3 cannot create a virtualenv: install python3.11-venv "
        "(scripts/install --system does)"
    ]
    assert calls(checkout, "apt-get") == []


def test_install_system_adds_the_venv_package_then_only_checks(checkout: Path) -> None:
    # What a first attempt on Debian leaves behind: .venv/bin/python without pip.
    (checkout / ".venv" / "bin").mkdir(parents=True)
    executable(checkout / ".venv" / "bin" / "python", HALF_MADE_VENV_PYTHON)
    first = run(checkout, "scripts/install", "--system")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "installing system packages: python3.11-venv",
        "modeldeck installed in .venv (modeldeck 0.1.0)",
    ]
    assert first.stderr == ""
    assert calls(checkout, "apt-get") == [
        "apt-get update -q",
        "apt-get install -y -q --no-install-recommends python3.11-venv",
    ]
    assert "python -m venv .venv" in calls(checkout, "python")
    assert calls(checkout, "venv-python -m pip install -q -e")  # the project went in
    again = run(checkout, "scripts/install", "--system")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == ["modeldeck installed in .venv (modeldeck 0.1.0)"]
    assert len(calls(checkout, "apt-get")) == 2  # nothing installed the second time
    assert calls(checkout, "python -m venv").count("python -m venv .venv") == 1


@pytest.mark.parametrize(("given", "seen"), [(None, "true"), ("false", "false"), ("1", "1")])
def test_ci_run_sets_ci_unless_the_runner_did(checkout: Path, given: str | None, seen: str) -> None:
    """tests/utils/db.py fails (rather than skips) the PostgreSQL tests when CI=true."""
    executable(checkout / "scripts" / "test", '#!/usr/bin/env bash\necho "CI=$CI"\n')
    env = {"CI": given} if given is not None else {}
    result = run(checkout, ".ci/run", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"CI={seen}"
