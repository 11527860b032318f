"""The ``rasst`` command's sharp edges, run as users run it, against a real gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import srt

from tests.support.live_server import REPO, SAMPLE, LiveServer

ACL_DE = REPO.parent / "shared" / "data" / "acl6060" / "dev.en-de.jsonl"


def rasst(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_subtitles_of_a_file_run_as_batch_work(gateway: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "talk.en.srt"
    done = rasst("subtitles", str(SAMPLE), "-o", str(out), "--server", gateway.http_url)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stderr
    cues = list(srt.parse(out.read_text()))
    text = " ".join(c.content for c in cues).lower()
    assert "best of times" in text and "worst of times" in text
    assert cues[0].start.total_seconds() >= 0 and cues[-1].end.total_seconds() <= 6.5


def test_subtitles_to_a_language_needs_a_translator(gateway: LiveServer) -> None:
    done = rasst("subtitles", str(SAMPLE), "--to", "de", "--server", gateway.http_url)
    assert done.returncode == 1
    assert "validation_failed" in done.stderr and "--llm-url" in done.stderr
    assert "Traceback" not in done.stderr


def test_stream_speed_zero_paces_at_the_server_limit(gateway: LiveServer) -> None:
    """--speed 0 used to die with pace_exceeded; now it streams at the announced max pace."""
    done = rasst("stream", str(SAMPLE), "--speed", "0", "--json", "--server", gateway.http_url)
    assert done.returncode == 0, done.stderr
    assert '"reason": "completed"' in done.stdout
    assert "pace_exceeded" not in done.stdout and "Traceback" not in done.stderr


def test_missing_tts_program_names_the_package(tmp_path: Path) -> None:
    done = rasst(
        "data",
        "synth",
        str(ACL_DE),
        "--max-segments",
        "1",
        "--talk",
        "2022.acl-long.268",
        "--cache-dir",
        str(tmp_path),
        env={"PATH": str(tmp_path)},  # no flite on this PATH
    )
    assert done.returncode == 2
    assert "apt-get install flite" in done.stderr
    assert "Errno" not in done.stderr


def test_target_language_option_is_to_everywhere() -> None:
    for command in (["stream"], ["eval"], ["subtitles"], ["glossary", "extract"]):
        help_text = rasst(*command, "--help", env={"COLUMNS": "200"}).stdout
        assert "--to" in help_text, command


def test_headerless_two_column_glossary_names_target_language(gateway: LiveServer) -> None:
    response = httpx.post(
        f"{gateway.http_url}/v1/glossaries",
        files={"file": ("pairs.csv", b"AI,KI\nmachine learning,maschinelles Lernen\n")},
        timeout=30,
    )
    assert response.status_code == 422
    assert "target_language" in response.json()["error"]["message"]
