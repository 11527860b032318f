from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from evaluation.dataset import GoldTerm, Segment, Talk
from evaluation.synth import (
    RATE,
    FestivalEngine,
    FliteEngine,
    SynthOptions,
    parse_voice,
    place_segments,
    synthesise_talk,
    trim_silence,
)

needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")


def seg(seg_id: int, start: float, end: float, text: str = "hello") -> Segment:
    return Segment("t", seg_id, seg_id - 1, text, "ref", (GoldTerm("x", "y"),), start, end)


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def test_parse_voice() -> None:
    assert parse_voice("flite:kal16") == FliteEngine("kal16")
    assert parse_voice("festival:cmu_us_slt_arctic_hts") == FestivalEngine("cmu_us_slt_arctic_hts")
    for bad in ("flite", "espeak:en", "flite:"):
        with pytest.raises(ValueError):
            parse_voice(bad)


def test_short_speech_is_padded_at_its_reference_offset(tmp_path: Path) -> None:
    talk = Talk("t", (seg(1, 1.0, 3.0), seg(2, 4.0, 6.0)))
    samples, placed = place_segments(talk, [tone(1.0), tone(1.5)], SynthOptions(tail=0.5), tmp_path)
    assert [(p.start, p.end, p.tempo, p.overrun) for p in placed] == [
        (1.0, 2.0, 1.0, 0.0),
        (4.0, 5.5, 1.0, 0.0),
    ]
    assert len(samples) == int(6.0 * RATE)
    assert not samples[: RATE - 1].any()  # silence before the first segment
    assert samples[RATE : RATE + 100].any()


@needs_sox
def test_long_speech_is_stretched_then_overruns_and_shifts(tmp_path: Path) -> None:
    talk = Talk("t", (seg(1, 0.0, 2.0), seg(2, 2.1, 3.0)))
    options = SynthOptions(max_tempo=1.5, gap=0.1, tail=0.0)
    _, placed = place_segments(talk, [tone(2.4), tone(3.0)], options, tmp_path)
    first, second = placed
    assert first.tempo == pytest.approx(1.2) and first.end == pytest.approx(2.0, abs=0.05)
    # 3 s into a 0.9 s slot: capped at 1.5x -> 2 s long, overruns and is recorded.
    assert second.start == pytest.approx(2.1, abs=0.06)
    assert second.tempo == 1.5
    assert second.end - second.start == pytest.approx(2.0, abs=0.05)
    assert second.overrun == pytest.approx(second.end - 3.0)


def test_trim_silence() -> None:
    padded = np.concatenate([np.zeros(RATE, np.int16), tone(0.5), np.zeros(RATE, np.int16)])
    trimmed = trim_silence(padded)
    assert 0.5 <= len(trimmed) / RATE <= 0.6
    assert trim_silence(np.zeros(100, np.int16)).size == 0


@needs_flite
def test_flite_talk_is_cached_with_its_timing(tmp_path: Path) -> None:
    talk = Talk("talk1", (seg(1, 0.5, 3.0, "The BLEU score."), seg(2, 3.5, 6.0, "A corpus.")))
    engine = parse_voice("flite:slt")
    made = synthesise_talk(talk, engine, tmp_path)
    timing = json.loads(made.timing_path.read_text())
    assert made.wav.is_file() and made.timing_path.parent == made.wav.parent
    assert timing["talk_id"] == "talk1" and len(timing["segments"]) == 2
    assert timing["segments"][0]["start"] == 0.5
    assert made.duration == pytest.approx(timing["duration"])
    mtime = made.wav.stat().st_mtime_ns
    again = synthesise_talk(talk, engine, tmp_path)
    assert again == made and made.wav.stat().st_mtime_ns == mtime  # from the cache
    changed = Talk("talk1", (seg(1, 0.5, 3.0, "The BLEU scores."), talk.segments[1]))
    assert synthesise_talk(changed, engine, tmp_path).wav != made.wav


@pytest.mark.skipif(
    not Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts").is_dir(),
    reason="festival with festvox-us-slt-hts not installed",
)
def test_festival_voice(tmp_path: Path) -> None:
    talk = Talk("talk1", (seg(1, 0.0, 3.0, "A corpus."),))
    made = synthesise_talk(talk, parse_voice("festival:cmu_us_slt_arctic_hts"), tmp_path)
    assert 0.3 < made.segments[0].end - made.segments[0].start < 3.0
