"""`rasst train slm-data` without the retriever: layout, exact pattern mix, tags, stats."""

from __future__ import annotations

import dataclasses
import io
import json
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.translator.messages import system_message
from server.translator.tags import strip_tags
from tests.training.support import write_synthetic_corpus
from training.audio import load_pcm
from training.builder import BuildParams, build_dataset
from training.corpus import read_corpus
from training.patterns import Pattern, PatternMix, pattern_counts
from training.sft_format import split_content


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _pcm(wav: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(wav)) as handle:
        assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (
            16000,
            1,
            2,
        )
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")


def test_rows_are_chat_sft_with_one_wav_per_audio_placeholder(tmp_path: Path) -> None:
    corpus, glossary = write_synthetic_corpus(tmp_path / "in", copies=2)
    params = BuildParams(
        corpus=corpus,
        glossary=glossary,
        lang="de",
        out=tmp_path / "out",
        lms=(1, 2),
        conversation_chunks=3,
    )
    result = build_dataset(params)
    rows, metas = _read(result.rows), _read(result.meta)
    assert len(rows) == len(metas) == result.stats["conversations"] > 0
    audio = {r.id: load_pcm(r.audio) for r in read_corpus(corpus)}
    for row, meta in zip(rows, metas, strict=True):
        messages = row["messages"]
        assert messages[0] == system_message("de")
        assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * (len(messages) // 2)
        users = [m["content"] for m in messages if m["role"] == "user"]
        assert sum(split_content(u).count(None) for u in users) == len(row["audios"])
        assert len(meta["turns"]) == len(users) <= 3
        for path, turn, user in zip(row["audios"], meta["turns"], users, strict=True):
            assert not Path(path).is_absolute()
            expected = audio[meta["record"]][
                round(turn["start"] * 16000) : round(turn["end"] * 16000)
            ]
            assert np.array_equal(_pcm((params.out / path).read_bytes()), expected)
            lines = [f"{e['source']}={e['target']}" for e in turn["term_map"]]
            assert user == ("<audio>" + ("\n\nterm_map:\n" + "\n".join(lines) if lines else ""))
    stats = json.loads(result.stats_path.read_text())
    assert stats["turns"] == sum(len(m["turns"]) for m in metas)
    assert stats["chunks"]["per_lm"] == {"1": 16, "2": 10}  # lm 1: first and last are silent
    assert stats["chunks"]["silent_dropped"] == 4
    assert stats["hard_negatives"]["source"] == "glossary"
    assert stats["gold_terms"]["coverage"] == 1.0


@pytest.mark.parametrize(
    ("mix", "seed"),
    [
        (PatternMix(0.7, 0.15, 0.15), 0),
        (PatternMix(0.5, 0.25, 0.25), 1),
        (PatternMix(1 / 3, 1 / 3, 1 / 3), 2),
        (PatternMix(0.0, 1.0, 0.0), 3),
        (PatternMix(0.2, 0.0, 0.8), 4),
    ],
)
def test_built_data_has_the_exact_pattern_mix(tmp_path: Path, mix: PatternMix, seed: int) -> None:
    corpus, glossary = write_synthetic_corpus(tmp_path / "in", copies=3)
    params = BuildParams(
        corpus=corpus,
        glossary=glossary,
        lang="de",
        out=tmp_path / "out",
        lms=(1, 3),
        mix=mix,
        seed=seed,
    )
    result = build_dataset(params)
    turns = [t for m in _read(result.meta) for t in m["turns"]]
    counts = Counter(Pattern(t["pattern"]) for t in turns)
    assert dict(counts) == {p: c for p, c in pattern_counts(len(turns), mix.as_dict()).items() if c}
    for turn in turns:
        kinds = {e["kind"] for e in turn["term_map"]}
        if turn["pattern"] == "none":
            assert not turn["term_map"]
        elif turn["pattern"] == "all_wrong":
            assert turn["term_map"] and kinds == {"negative"}
        else:
            assert {g["source"] for g in turn["gold"]} <= {e["source"] for e in turn["term_map"]}
    again = build_dataset(params)  # deterministic for a seed
    assert _read(again.meta) == _read(result.meta)


def test_tags_mark_offered_gold_translations_only(tmp_path: Path) -> None:
    corpus, glossary = write_synthetic_corpus(tmp_path / "in")
    params = BuildParams(
        corpus=corpus,
        glossary=glossary,
        lang="de",
        out=tmp_path / "out",
        lms=(2,),
        mix=PatternMix(1.0, 0.0, 0.0),
    )
    result = build_dataset(params)
    row, meta = _read(result.rows)[0], _read(result.meta)[0]
    answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
    assert " ".join(strip_tags(a) for a in answers if a) == (
        "Wir bewerten das Sprachmodell mit BLEU auf dem neuen Korpus. "
        "Der Transformer nutzt Aufmerksamkeit im Decoder."
    )
    tagged = [t for turn in meta["turns"] for t in turn["tagged"]]
    assert sorted(tagged) == sorted(
        ["Sprachmodell", "BLEU", "Korpus", "Transformer", "Aufmerksamkeit", "Decoder"]
    )
    assert "".join(answers).count("<t>") == 6
    untagged = build_dataset(dataclasses.replace(params, tags=False, out=tmp_path / "o2"))
    assert "<t>" not in untagged.rows.read_text()


def test_records_in_other_languages_are_skipped(tmp_path: Path) -> None:
    corpus, _ = write_synthetic_corpus(tmp_path / "in")
    glossary = tmp_path / "zh.tsv"
    glossary.write_text("en\tzh\nBLEU\tBLEU\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no recordings translated into zh"):
        build_dataset(BuildParams(corpus=corpus, glossary=glossary, lang="zh", out=tmp_path / "o"))


def test_cli_builds_data_and_refuses_a_bad_mix(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from training.cli import train_app

    corpus, glossary = write_synthetic_corpus(tmp_path / "in")
    runner = CliRunner()
    args = ["slm-data", str(corpus), "--glossary", str(glossary), "--to", "de"]
    done = runner.invoke(
        train_app, [*args, "--out", str(tmp_path / "out"), "--lm", "2", "--no-retriever"]
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["turns"] == 5 and sum(summary["patterns"].values()) == 5
    bad = runner.invoke(train_app, [*args, "--out", str(tmp_path / "o2"), "--mix", "none=0.5"])
    assert bad.exit_code == 2
