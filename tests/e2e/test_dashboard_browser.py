"""End to end: `modeldeck dashboard` on a free port, every page in headless Chromium.

Starts the real CLI command (which starts Streamlit as its child) against a seeded SQLite
database, opens each page, waits until Streamlit has finished running the script, saves a
full-page screenshot in the test's temp folder and fails on any Streamlit exception box.
Without Chromium (or playwright) it skips locally; under CI=true that is a failure, because
the test install provides both.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from tests.dashboard import world
from tests.utils.servers import free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# (url path + query, heading the page must show)
PAGES = [
    ("", "Fleet overview"),
    ("model?model=fraud-detector", "fraud-detector"),
    ("decay?model=fraud-detector&env=production", "Performance decay"),
    ("quality?model=fraud-detector&env=production", "Data quality"),
    ("drift?model=fraud-detector&env=production", "Data drift"),
    ("hardware", "GPU hardware"),
    ("alerts", "Alerts"),
    ("audit", "Audit log"),
]


def require_browser(path: str = CHROMIUM) -> str:
    """The Chromium to drive, or skip (locally) / fail (CI=true) saying what is missing."""
    missing = None
    if not Path(path).exists():
        missing = f"no Chromium at {path}"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[dev]')"
    if missing is None:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{missing}: the browser test must run in CI")
    pytest.skip(missing)


@pytest.fixture
def chromium() -> str:
    return require_browser()


def test_a_missing_browser_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nowhere = str(tmp_path / "no-chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI"):
        require_browser(nowhere)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="no Chromium at"):
        require_browser(nowhere)


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("modeldeck")
    if script.exists():
        return [str(script)]
    found = shutil.which("modeldeck")
    if found is None:
        pytest.fail("the `modeldeck` console script is not installed (pip install -e .)")
    return [found]


@pytest.fixture
def dashboard(chromium: str, tmp_path: Path, sqlite_engine: Engine) -> Iterator[str]:
    config, settings = world.write_config(tmp_path)
    world.build(sqlite_engine, settings)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDECK_")}
    log = (tmp_path / "dashboard.log").open("w")
    proc = subprocess.Popen(
        [*_cli(), "--config", str(config), "dashboard", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: (
                proc.poll() is None and httpx.get(f"{base}/_stcore/health", timeout=1).text == "ok"
            ),
            timeout=60,
            what=f"the dashboard on {base} (log: {tmp_path / 'dashboard.log'})",
        )
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


_SHAPE = (
    "[document.querySelectorAll('[data-testid=\"stElementContainer\"]').length, "
    "Math.max(...Array.from(document.querySelectorAll('section, div'))"
    ".map(e => e.scrollHeight))]"
)


def _settled(page: object, heading: str, timeout_ms: int = 30_000) -> None:
    """Streamlit has run the script: the heading is there, no 'running' widget, and the page
    stopped growing for a moment (charts below the fold arrive last)."""
    page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout_ms)  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout_ms / 1000
    last, stable = None, 0
    while time.monotonic() < deadline and stable < 4:
        running = page.locator('[data-testid="stStatusWidget"]').count()  # type: ignore[attr-defined]
        shape = page.evaluate(_SHAPE)  # type: ignore[attr-defined]
        stable = stable + 1 if shape == last and not running else 0
        last = shape
        page.wait_for_timeout(250)  # type: ignore[attr-defined]


def _grow_to_content(page: object, rounds: int = 6) -> None:
    height = 0
    for _ in range(rounds):
        found = int(
            page.evaluate(  # type: ignore[attr-defined]
                "Math.max(...Array.from(document.querySelectorAll('section, div'))"
                ".map(e => e.scrollHeight))"
            )
        )
        if found <= height:
            return
        height = found
        page.set_viewport_size({"width": 1440, "height": max(1000, height)})  # type: ignore[attr-defined]
        page.wait_for_timeout(400)  # type: ignore[attr-defined]


def test_every_page_renders_in_chromium(chromium: str, dashboard: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        try:
            for path, heading in PAGES:
                page.goto(f"{dashboard}/{path}", wait_until="domcontentloaded")
                _settled(page, heading)
                name = path.split("?")[0] or "overview"
                # Streamlit scrolls inside its main section, so grow the window to its height
                # for a screenshot of the whole page (charts below the fold draw late).
                _grow_to_content(page)
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                page.set_viewport_size({"width": 1440, "height": 1000})
                errors = page.locator('[data-testid="stException"]')
                assert errors.count() == 0, f"{name}: {errors.first.inner_text()}"
                assert page.get_by_text("Traceback").count() == 0, name
        finally:
            browser.close()
    assert sorted(p.name for p in shots.iterdir()) == sorted(
        f"{(path.split('?')[0] or 'overview')}.png" for path, _ in PAGES
    )
