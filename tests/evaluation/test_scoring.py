"""The harness's scoring on recorded events made by hand: a perfect system scores perfectly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from evaluation.dataset import (
    SegmentTiming,
    load_talks,
    load_words,
    resolve_dataset,
    term_occurrences,
)
from evaluation.harness import EvalConfig, _Glossaries, hypothesis_units, score
from evaluation.report import plot_sweep, sweep_table, write_report
from evaluation.runner import RecordedEvent, TalkRun
from evaluation.synth import PlacedSegment, SynthesisedTalk

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "acl6060"
TALK = "2022.acl-long.268"


def _fixture(lang: str, tmp_path: Path) -> tuple[Any, ...]:
    jsonl = resolve_dataset(SHARED, lang)
    talks = load_talks(jsonl, talk_ids=[TALK], max_segments=3)
    words = load_words(SHARED / "dev.mfa_words.tsv", [TALK])
    (talk,) = talks
    # Synthesised exactly at the reference times.
    placed = tuple(
        PlacedSegment(s.seg_id, s.index, s.start, s.end, s.start, s.end, 1.0, 0.0)
        for s in talk.segments
    )
    synth = SynthesisedTalk(TALK, tmp_path / "x.wav", tmp_path / "x.json", 31.0, placed)
    return talks, [synth], words


def _perfect_run(talks: Any, words: Any, lang: str, chunk: float = 1.92) -> TalkRun:
    """Each segment's reference committed in the chunk after its end; gold terms found."""
    (talk,) = talks
    timing = [SegmentTiming(s.seg_id, s.start, s.end) for s in talk.segments]
    occurrences = term_occurrences(talk, timing, words[TALK])
    run = TalkRun(
        TALK, 31.0, {"type": "session.started", "mode": "translation", "chunk_seconds": chunk}
    )
    n = math.ceil(31.0 / chunk)
    for i in range(n):
        start, end = i * chunk, min((i + 1) * chunk, 31.0)
        found = sorted({o.en for o in occurrences if start <= o.end < end})
        run.events.append(
            RecordedEvent(
                {
                    "type": "terms",
                    "chunk": i,
                    "start": start,
                    "end": end,
                    "retrieval_ms": 12.0,
                    "terms": [
                        {
                            "source": t,
                            "targets": {},
                            "score": 1.0,
                            "start": start,
                            "end": end,
                            "glossary_id": "g",
                        }
                        for t in found
                    ],
                },
                0.0,
                end,
            )
        )
        text = " ".join(s.ref for s in talk.segments if start <= s.end < end)
        run.events.append(
            RecordedEvent(
                {
                    "type": "translation.commit",
                    "chunk": i,
                    "start": start,
                    "end": end,
                    "lang": lang,
                    "text": text,
                    "terms_used": [],
                },
                0.0,
                end,
            )
        )
        run.events.append(
            RecordedEvent(
                {
                    "type": "chunk.done",
                    "chunk": i,
                    "start": start,
                    "end": end,
                    "speech_seconds": 1.0,
                    "processing_ms": 200.0,
                    "latency_ms": 250.0,
                    "lag_seconds": 0.0,
                },
                0.0,
                end,
            )
        )
    return run


@pytest.mark.parametrize("lang", ["de", "zh"])
def test_a_perfect_system_scores_perfectly(lang: str, tmp_path: Path) -> None:
    talks, synth, words = _fixture(lang, tmp_path)
    run = _perfect_run(talks, words, lang)
    gold = {t.en for s in talks[0].segments for t in s.terms}
    config = EvalConfig(dataset=SHARED, lang=lang, out=tmp_path, lm=2, k=10)
    report = score(config, talks, synth, words, [run], _Glossaries(terms={g: ["x"] for g in gold}))
    assert report["retrieval"]["recall_at_k"] == 1.0
    assert report["retrieval"]["precision"] == 1.0
    assert report["retrieval"]["overhead_ratio"] == pytest.approx(12.0 / 1920.0, abs=1e-5)
    assert report["bleu"] == pytest.approx(100.0)
    assert report["chrf"] == pytest.approx(100.0)
    assert report["term_acc"] == 1.0
    assert report["translation"]["resegmentation"] in {"mweralign", "omnisteval"}
    for key in ("stream_laal", "stream_laal_ca"):
        assert isinstance(report[key], float) and math.isfinite(report[key])
    # The computation-aware variant adds the 200 ms of gateway computation.
    assert report["stream_laal_ca"] == pytest.approx(report["stream_laal"] + 200.0)
    if lang == "de":
        assert report["term_acc_form_aware"] == 1.0
    else:
        assert report["term_acc_form_aware"] is None

    write_report(report, [run], tmp_path)
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["retrieval"]["recall_at_k"] == 1.0
    assert "BLEU" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "cost.png").stat().st_size > 1000


def test_hypothesis_units_carry_chunk_end_and_computation(tmp_path: Path) -> None:
    run = TalkRun("t", 4.0, {})
    run.events += [
        RecordedEvent(
            {
                "type": "translation.commit",
                "chunk": 1,
                "start": 1.92,
                "end": 3.84,
                "lang": "de",
                "text": "zwei <t>Wörter</t>",
                "terms_used": [],
            },
            0,
            0,
        ),
        RecordedEvent(
            {
                "type": "translation.commit",
                "chunk": 0,
                "start": 0,
                "end": 1.92,
                "lang": "de",
                "text": "eins",
                "terms_used": [],
            },
            0,
            0,
        ),
        RecordedEvent(
            {
                "type": "translation.commit",
                "chunk": 0,
                "start": 0,
                "end": 1.92,
                "lang": "zh",
                "text": "一",
                "terms_used": [],
            },
            0,
            0,
        ),
        RecordedEvent(
            {"type": "chunk.done", "chunk": 1, "start": 1.92, "end": 3.84, "processing_ms": 50.0},
            0,
            0,
        ),
    ]
    units = hypothesis_units(run, "de")
    assert [(u.text, u.delay, u.elapsed) for u in units] == [
        ("eins", 1920.0, 1920.0),
        ("zwei", 3840.0, 3890.0),
        ("Wörter", 3840.0, 3890.0),
    ]


def test_sweep_table_and_plots(tmp_path: Path) -> None:
    reports = [
        {
            "config": {"lm": lm},
            "glossary": {"entries": size},
            "retrieval": {
                "recall_at_k": 0.5 + 0.1 * lm,
                "recall_at_k_late_ok": 0.9,
                "precision": 0.7,
            },
            "cost": {
                "chunk_seconds": 0.96 * lm,
                "retrieval_ms": {"p50": 10.0},
                "overhead_ratio": 0.01,
                "processing_ms": {"p50": 100.0},
            },
        }
        for lm in (1, 2)
        for size in (238, 10238)
    ]
    table = sweep_table(reports)
    assert table.count("\n") == 6 and "| 10238 | 2 | 0.700 |" in table
    paths = plot_sweep(reports, tmp_path)
    assert all(p.stat().st_size > 1000 for p in paths)
