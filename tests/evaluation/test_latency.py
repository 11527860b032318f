from __future__ import annotations

import random
from pathlib import Path

import pytest
from omnisteval.data import Instance
from omnisteval.scoring import LAALScorer

from evaluation.metrics import latency
from evaluation.metrics.latency import (
    RefSegment,
    Resegmented,
    Unit,
    laal,
    mweralign_command,
    resegment_mweralign,
    run_omnisteval,
    stream_laal,
)

REFS = [
    RefSegment("t1", "Das ist ein Test.", 1.0, 2.0),
    RefSegment("t1", "Zweiter Satz hier.", 4.0, 2.0),
    RefSegment("t2", "Dritter Satz.", 0.5, 1.0),
]


def _units(text: str, first_ms: float, step_ms: float, compute_ms: float = 100.0) -> list[Unit]:
    return [
        Unit(w, first_ms + i * step_ms, first_ms + i * step_ms + compute_ms)
        for i, w in enumerate(text.split())
    ]


HYPS = {
    "t1": _units("Das ist ein Test. Zweiter Satz hier.", 1500, 500),
    "t2": _units("Dritter Satz.", 1200, 300),
}


def test_laal_hand_computed() -> None:
    # Source 2000 ms, 4 words emitted at 500, 1000, 1500, 2500 ms; reference 4 words.
    # rate = max(4, 4) / 2000 = 1/500; tau = 4 (the first delay >= 2000 is the 4th):
    # ((500-0) + (1000-500) + (1500-1000) + (2500-1500)) / 4 = 625
    assert laal([500, 1000, 1500, 2500], 2000, 4) == pytest.approx(625.0)
    # A longer hypothesis than reference: the rate uses the hypothesis length (6 / 3000 ms);
    # tau = 3 (3100 >= 3000): ((1000 - 0) + (2000 - 500) + (3100 - 1000)) / 3 = 4600 / 3
    assert laal([1000, 2000, 3100, 3200, 3300, 3400], 3000, 2) == pytest.approx(4600 / 3)
    # First word after the end of the source: LAAL is that delay.
    assert laal([4000, 4100], 3000, 2) == 4000
    assert laal([], 1000, 3) is None


def test_laal_equals_omnisteval_laal() -> None:
    rng = random.Random(7)
    scorer = LAALScorer()
    for _ in range(200):
        n = rng.randint(1, 12)
        delays = sorted(rng.uniform(-500, 6000) for _ in range(n))
        source = rng.uniform(500, 5000)
        ref = " ".join("w" for _ in range(rng.randint(1, 12)))
        instance = Instance(prediction="x", reference=ref, source_length=source, emission_cu=delays)
        assert laal(delays, source, len(ref.split())) == pytest.approx(scorer.compute(instance))


def test_stream_laal_skips_empty_segments_and_uses_segment_offsets() -> None:
    segs = [
        Resegmented("t", "a b", 1.0, 2.0, (Unit("a", 1500, 1600), Unit("b", 2000, 2100)), False),
        Resegmented("t", "c", 4.0, 1.0, (), False),
    ]
    scores = stream_laal(segs)
    # delays 500, 1000 in a 2000 ms segment, 2 ref words: rate 1/1000 -> (500 + 0) / 2
    assert scores.stream_laal == pytest.approx(250.0)
    assert scores.stream_laal_ca == pytest.approx(350.0)
    assert (scores.scored_segments, scores.empty_segments) == (1, 1)


def test_omnisteval_resegmentation_identity(tmp_path: Path) -> None:
    result = run_omnisteval(HYPS, REFS, "de", tmp_path)
    assert [s.prediction for s in result.segments] == [r.reference for r in REFS]
    assert result.scores["BLEU"] == pytest.approx(100.0)
    # Units keep their own times through the re-segmentation.
    assert [u.delay for u in result.segments[2].units] == [1200, 1500]
    ours = stream_laal(result.segments)
    assert ours.stream_laal == pytest.approx(result.scores["LongLAAL (CU)"], abs=1e-3)
    assert ours.stream_laal_ca == pytest.approx(result.scores["LongLAAL (CA)"], abs=1e-3)


def test_omnisteval_char_level(tmp_path: Path) -> None:
    refs = [RefSegment("t", "我们 发布 语料库。", 0.0, 2.0), RefSegment("t", "很好。", 2.5, 1.0)]
    units = [Unit(c, 500 + 100 * i, 600 + 100 * i) for i, c in enumerate("我们发布语料库。很好。")]
    result = run_omnisteval({"t": units}, refs, "zh", tmp_path)
    assert [s.prediction for s in result.segments] == ["我们发布语料库。", "很好。"]
    assert result.segments[0].reference_length == 8


@pytest.mark.skipif(mweralign_command() is None, reason="mweralign (GPL, optional) not installed")
def test_mweralign_resegmentation_carries_delays() -> None:
    command = mweralign_command()
    assert command is not None
    hyps = {"t1": _units("Das ist ein Test Zweiter Satz hier", 1500, 500), "t2": []}
    segments = resegment_mweralign(hyps, REFS, "de", command)
    assert [s.prediction for s in segments] == ["Das ist ein Test", "Zweiter Satz hier", ""]
    assert [u.delay for u in segments[1].units] == [3500, 4000, 4500]


def test_mweralign_missing_is_reported_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latency.shutil, "which", lambda name: None)
    monkeypatch.setattr(latency.sys, "executable", "/nonexistent/python")
    assert mweralign_command() is None
