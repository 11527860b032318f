"""The OBS browser-source overlay (``/view/TOKEN?obs=1``) in a real Chromium, with screenshots."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.live_server import REPO, SAMPLE, LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def finished_session(gateway: LiveServer) -> dict:
    """A finished captions session of the sample, with a glossary term in it."""
    upload = httpx.post(
        f"{gateway.http_url}/v1/glossaries",
        files={"file": ("t.csv", "en,de\nworst of times,schlechteste der Zeiten\n")},
        data={"name": "obs"},
        timeout=30,
    )
    assert upload.status_code == 201, upload.text
    # The rasst command in a subprocess: Playwright's sync API owns this thread's event loop.
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "stream", str(SAMPLE), "--json", "--speed", "0"]
        + ["--to", "de", "--glossary", upload.json()["id"], "--server", gateway.http_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["type"] == "session.summary", events[-1]
    assert any(e["type"] == "terms" and e["terms"] for e in events), "the glossary term was found"
    return events[0]


@pytest.fixture
def obs_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert not problems, problems


def _open(page: Page, gateway: LiveServer, token: str, query: str) -> None:
    page.goto(f"{gateway.http_url}/view/{token}?{query}")
    page.wait_for_selector("body[data-ready='true']", state="attached")
    page.wait_for_selector("#status[data-state='ended']", state="attached")


def test_obs_overlay_is_transparent_large_and_n_lines(
    obs_page: Page, gateway: LiveServer, finished_session: dict, artifacts: Path
) -> None:
    from PIL import Image

    _open(obs_page, gateway, finished_session["viewer_token"], "obs=1&lang=en&lines=1")
    lines = obs_page.locator("#lines p.final")
    assert lines.count() == 1  # the newest line only
    assert "times" in lines.first.inner_text().lower()
    style = obs_page.evaluate(
        "(() => { const s = getComputedStyle(document.body);"
        " const l = getComputedStyle(document.getElementById('lines'));"
        " return [s.backgroundColor, getComputedStyle(document.documentElement).backgroundColor,"
        " parseFloat(l.fontSize), l.textShadow]; })()"
    )
    assert style[0] == "rgba(0, 0, 0, 0)" and style[1] == "rgba(0, 0, 0, 0)"
    assert style[2] >= 40 and style[3] != "none"
    assert not obs_page.is_visible("#lang") and not obs_page.is_visible("#ended")
    assert obs_page.locator("#lines mark").count() >= 1  # terms on by default

    shot = obs_page.screenshot(omit_background=True)
    (artifacts / "obs-overlay.png").write_bytes(shot)
    print(f"screenshot: {artifacts / 'obs-overlay.png'}")
    image = Image.open(io.BytesIO(shot)).convert("RGBA")
    assert image.getpixel((5, 5))[3] == 0  # the video shows through
    bottom = image.crop((0, image.height // 2, image.width, image.height))
    assert bottom.getextrema()[3][1] == 255  # opaque text near the bottom


def test_obs_overlay_toggles_terms_language_and_lines(
    obs_page: Page, gateway: LiveServer, finished_session: dict, artifacts: Path
) -> None:
    _open(
        obs_page, gateway, finished_session["viewer_token"], "obs=1&lang=en&lines=3&terms=0&size=30"
    )
    assert obs_page.locator("#lines mark, #lines .gloss").count() == 0
    assert 1 <= obs_page.locator("#lines p.final").count() <= 3
    size = obs_page.evaluate(
        "parseFloat(getComputedStyle(document.getElementById('lines')).fontSize)"
    )
    assert size == 30
    # A target language of a captions-only session: the original with the terms in German.
    _open(obs_page, gateway, finished_session["viewer_token"], "obs=1&lang=de")
    assert "schlechteste der Zeiten" in " ".join(
        obs_page.locator("#lines .gloss").all_inner_texts()
    )
    obs_page.screenshot(path=str(artifacts / "obs-overlay-de-terms.png"), omit_background=True)
