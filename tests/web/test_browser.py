"""The speaker page and the audience viewer in a real Chromium, the microphone fed from a WAV file.

The fake microphone plays ``two_cities_16k.wav`` at real time, so the end-to-end
test takes about half a minute. Screenshots go to ``test-artifacts/web/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.live_server import TWO_CITIES, LiveServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

# Phrases of the Two Cities text that Whisper recognises (checked against the
# gateway's captions for this file) and the retriever finds, spread over the file:
# the fake microphone does not necessarily start at the file's beginning.
GLOSSARY = {
    "age of wisdom": "Zeitalter der Weisheit",
    "season of light": "Zeit des Lichts",
    "spring of hope": "Frühling der Hoffnung",
    "winter of despair": "Winter der Verzweiflung",
    "degree of comparison": "Grad des Vergleichs",
}
GLOSSARY_CSV = "en,de\n" + "".join(f"{en},{de}\n" for en, de in GLOSSARY.items())
REFERENCE_WORDS = set(re.findall(r"[a-z]+", TWO_CITIES.with_suffix(".txt").read_text().lower()))
# Real-time audio on a busy 2-core machine: captions of an utterance come after it ends.
CAPTION_WAIT_MS = 90_000
START_WAIT_MS = 90_000


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems = _watch_console(page)
    yield page
    context.close()
    assert not problems, f"browser console errors: {problems}"


def _watch_console(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    return problems


def _open(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']", state="attached")


def _finals(page: Page) -> list[str]:
    texts: list[str] = page.evaluate("window.rasstSpeaker.state.captions.finalTexts()")
    return texts


def _is_two_cities(caption: str) -> bool:
    words = caption.split()
    return len(words) >= 4 and sum(w in REFERENCE_WORDS for w in words) >= 0.6 * len(words)


def _poll(page: Page, condition: Callable[[], bool], timeout_ms: int) -> None:
    # wait_for_function evaluates strings with eval(), which the pages' CSP forbids.
    for _ in range(timeout_ms // 250):
        if condition():
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"condition not met within {timeout_ms} ms: {_finals(page)}")


def _wait_ended(page: Page, gateway: LiveServer) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector("#status[data-state='ended']", timeout=CAPTION_WAIT_MS)
    except PlaywrightTimeout:
        status = page.inner_text("#status")
        banner = page.inner_text("#banner") if page.is_visible("#banner") else ""
        raise AssertionError(
            f"no summary after stop: status={status!r} banner={banner!r}\n{gateway.log()[-4000:]}"
        ) from None


def _shot(page: Page, artifacts: Path, name: str) -> Path:
    path = artifacts / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_speaker_captions_terms_and_viewer_from_the_microphone(
    browser: Browser, page: Page, gateway: LiveServer, artifacts: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect  # the browser fixture checked it is installed

    _open(page, gateway.http_url + "/")

    # Upload a glossary from the page; its id lands in the session settings.
    glossary = tmp_path / "two-cities.csv"
    glossary.write_text(GLOSSARY_CSV, encoding="utf-8")
    page.set_input_files("#glossary-file", str(glossary))
    page.click("#glossary-upload")
    expect(page.locator("#glossary-report")).to_contain_text(f"{len(GLOSSARY)} entries")
    assert re.fullmatch(r"gl_\w+", page.input_value("#glossary-ids"))
    assert page.is_checked("#lang-de")

    page.click("#start-mic")
    page.wait_for_selector("#status[data-state='live']", timeout=START_WAIT_MS)
    viewer_url = page.get_attribute("#viewer-link", "href")
    assert viewer_url and "/view/" in viewer_url
    expect(page.locator("#qr")).to_have_js_property("complete", True)
    assert page.evaluate("document.getElementById('qr').naturalWidth") > 0  # the SVG QR loaded

    # The viewer joins while the talk runs (a second browser context: another phone).
    viewer_context = browser.new_context(viewport={"width": 420, "height": 800})
    viewer = viewer_context.new_page()
    viewer_problems = _watch_console(viewer)
    _open(viewer, viewer_url)

    # Live captions, and the glossary term highlighted with its translation.
    # (Some captions are noise, e.g. where the fake microphone loops the file.)
    _poll(page, lambda: any(_is_two_cities(text) for text in _finals(page)), CAPTION_WAIT_MS)
    mark = page.wait_for_selector("#captions mark", timeout=CAPTION_WAIT_MS)
    term = mark.inner_text().lower()
    assert term in GLOSSARY
    assert mark.get_attribute("title") == f"{term} → {GLOSSARY[term]}"
    assert GLOSSARY[term] in page.inner_text("#terms")
    assert page.get_attribute("#lag", "data-level") in {"ok", "warn", "bad"}

    # Wait for a second utterance, then stop: the server flushes and sends the summary.
    _poll(page, lambda: sum(_is_two_cities(text) for text in _finals(page)) >= 2, CAPTION_WAIT_MS)
    _shot(page, artifacts, "speaker-live.png")
    page.click("#stop")
    _wait_ended(page, gateway)
    summary = page.inner_text("#summary")
    assert "completed" in summary
    speaker_finals = _finals(page)
    assert len(speaker_finals) >= 2

    # The viewer received the same final captions (same order), and the end of the session.
    viewer.wait_for_selector("#status[data-state='ended']", timeout=CAPTION_WAIT_MS)
    viewer_finals: list[str] = viewer.evaluate("window.rasstViewer.state.panel.finalTexts()")
    assert viewer_finals == speaker_finals
    # Captions-only session, viewer in German: terms carry their German rendering.
    assert viewer.input_value("#lang") == "de"
    assert GLOSSARY[term] in viewer.locator("#lines .gloss").all_inner_texts()
    assert viewer.is_visible("#ended a")
    _shot(viewer, artifacts, "viewer-phone.png")
    viewer.select_option("#lang", "en")
    assert viewer.evaluate("window.rasstViewer.state.panel.finalTexts()") == speaker_finals
    assert viewer.locator("#lines .gloss").count() == 0

    # The projection overlay of the same session.
    overlay = viewer_context.new_page()
    overlay.set_viewport_size({"width": 1280, "height": 720})
    _open(overlay, viewer_url.split("?")[0] + "?lang=en&overlay=1")
    overlay.wait_for_selector("#lines p.final")
    assert overlay.evaluate("document.body.classList.contains('overlay')")
    assert not overlay.is_visible("#lang")
    _shot(overlay, artifacts, "viewer-overlay.png")
    viewer_context.close()
    assert not viewer_problems, viewer_problems


def test_server_errors_are_shown_with_their_code(page: Page, gateway: LiveServer) -> None:
    _open(page, gateway.http_url + "/")
    page.fill("#glossary-ids", "gl_does_not_exist")
    page.click("#start-mic")
    page.wait_for_selector("#banner.error:not([hidden])")
    assert "glossary_not_found" in page.inner_text("#banner .code")
    page.wait_for_selector("#status[data-state='ended'], #status[data-state='disconnected']")
    assert not page.is_disabled("#start-mic")


def _inject(page: Page, *events: dict[str, Any]) -> None:
    for event in events:
        page.evaluate("(e) => window.rasstSpeaker.handleEvent(e)", event)


def test_rendering_escapes_text_and_marks_terms_in_translations(
    page: Page, gateway: LiveServer, artifacts: Path
) -> None:
    """Synthetic events through the page's own handler: what a translation session shows."""
    # The synthetic viewer token has no QR code on the server: serve a blank one.
    page.route(
        "**/qr.svg",
        lambda route: route.fulfill(
            content_type="image/svg+xml", body="<svg xmlns='http://www.w3.org/2000/svg'/>"
        ),
    )
    _open(page, gateway.http_url + "/")
    _inject(
        page,
        {
            "type": "session.started",
            "session_id": "s-test",
            "mode": "translation",
            "viewer_token": "t-test",
            "source_language": "en",
            "target_languages": ["de", "zh"],
        },
        {"type": "caption", "utterance": 0, "final": False, "text": "<img src=x onerror=alert(1)>"},
        {
            "type": "terms",
            "chunk": 0,
            "terms": [
                {"source": "BLEU score", "targets": {"de": "BLEU-Wert", "zh": "BLEU分数"}},
                {"source": "score", "targets": {"de": "Punktzahl"}},
            ],
        },
        {
            "type": "caption",
            "utterance": 0,
            "final": True,
            "start": 0.5,
            "text": "the BLEU score rose; underscore",
        },
        {
            "type": "translation.delta",
            "lang": "de",
            "chunk": 0,
            "first_chunk": 0,
            "text": "Der BLEU",
        },
        {
            "type": "translation.commit",
            "lang": "de",
            "chunk": 0,
            "first_chunk": 0,
            "start": 0.0,
            "text": "Der BLEU-Wert stieg <b>",
        },
        {
            "type": "translation.commit",
            "lang": "zh",
            "chunk": 0,
            "first_chunk": 0,
            "start": 0.0,
            "text": "BLEU分数上升了",
        },
        {"type": "chunk.done", "chunk": 0, "lag_seconds": 3.4},
        {"type": "warning", "code": "llm_unavailable", "message": "the LLM is not answering"},
    )
    # Untrusted text stays text.
    assert page.locator("#captions img, #translations b").count() == 0
    # Longest term wins, whole words only ("underscore" is not "score").
    marks = page.locator("#captions p.final mark")
    assert marks.all_inner_texts() == ["BLEU score"]
    assert marks.first.get_attribute("title") == "BLEU score → de: BLEU-Wert, zh: BLEU分数"
    assert page.locator("#translation-de p.final mark").all_inner_texts() == ["BLEU-Wert"]
    assert "<b>" in page.inner_text("#translation-de p.final")
    assert page.locator("#translation-zh p.final mark").all_inner_texts() == ["BLEU分数"]
    assert page.is_hidden("#translation-de .partial")  # the commit replaced the revisable text
    assert page.get_attribute("#lag", "data-level") == "bad"
    assert "llm_unavailable" in page.inner_text("#banner")
    assert "v1/view/t-test/subtitles.srt?lang=de" in page.inner_html("#subtitle-links")
    _shot(page, artifacts, "speaker-synthetic-translation.png")


def test_unknown_viewer_link_is_a_404_page(browser: Browser, gateway: LiveServer) -> None:
    context = browser.new_context()  # not the `page` fixture: the 404 is logged to the console
    page = context.new_page()
    response = page.goto(gateway.http_url + "/view/not-a-token")
    assert response is not None and response.status == 404
    assert "does not exist" in page.inner_text("body")
    context.close()


def test_speaker_page_resumes_after_the_link_drops(browser: Browser, gateway: LiveServer) -> None:
    """The network between the page and the gateway dies mid-talk; the page reconnects and
    resends what the server missed, so the session ends with every captured sample."""
    from tests.support.tcp_proxy import TcpProxy

    context = browser.new_context()
    page = context.new_page()
    problems = _watch_console(page)
    with TcpProxy(gateway.port) as proxy:
        _open(page, f"http://127.0.0.1:{proxy.port}/")
        page.click("#start-mic")
        page.wait_for_selector("#status[data-state='live']", timeout=START_WAIT_MS)
        page.wait_for_timeout(4000)
        assert proxy.cut() >= 1
        _poll(page, lambda: page.evaluate("window.rasstSpeaker.state.resumes") == 1, 30_000)
        page.wait_for_selector("#status[data-state='live']", timeout=30_000)
        page.wait_for_timeout(3000)
        page.click("#stop")
        _wait_ended(page, gateway)
        state = page.evaluate(
            "(() => { const s = window.rasstSpeaker.state;"
            " return {summary: s.summary, captured: s.audioLog.total, lastSeq: s.lastSeq}; })()"
        )
    context.close()
    summary = state["summary"]
    assert summary["reason"] == "completed"
    # Every sample the page captured reached the server exactly once.
    assert summary["audio_seconds"] == pytest.approx(state["captured"] / 16000, abs=1e-3)
    assert state["captured"] > 16000 * 7
    assert state["lastSeq"] == summary["seq"]
    # The dropped link itself is logged by Chromium; nothing else may be.
    assert not [p for p in problems if "WebSocket" not in p], problems
