"""Training prompts are the translator's requests, byte for byte.

The builder's rows are replayed through the real translator stage
(:class:`server.translator.service.VllmSessionTranslator`, its HTTP calls recorded by a
mock transport that answers each chunk with the row's reference answer): for every chunk,
the messages it sends must equal the row's messages up to that chunk with each
``<audio>`` placeholder replaced by the base64 of the WAV file the row names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kernel.frames import AudioChunk, TermHit, TermHits, TranslationCommit
from server.translator import TranslatorParams, VllmTranslatorService
from tests.training.support import write_synthetic_corpus
from tests.translator.fakes import Recorder, context
from training.audio import load_pcm
from training.builder import BuildParams, build_dataset
from training.corpus import read_corpus
from training.patterns import PatternMix
from training.sft_format import file_reader, serving_messages


def _canonical(messages: list[dict[str, Any]]) -> bytes:
    return json.dumps(messages, ensure_ascii=False, sort_keys=True).encode()


async def test_serving_requests_equal_the_training_rows(tmp_path: Path) -> None:
    corpus, glossary = write_synthetic_corpus(tmp_path / "in")
    out = tmp_path / "out"
    # One conversation per recording and lm (shorter than serving's history), all patterns.
    params = BuildParams(
        corpus=corpus,
        glossary=glossary,
        lang="de",
        out=out,
        lms=(1, 2),
        mix=PatternMix(0.5, 0.25, 0.25),
    )
    result = build_dataset(params)
    record = next(read_corpus(corpus))
    pcm = load_pcm(record.audio)
    rows = [json.loads(x) for x in result.rows.read_text().splitlines()]
    metas = [json.loads(x) for x in result.meta.read_text().splitlines()]
    assert len(rows) == 2
    for row, meta in zip(rows, metas, strict=True):
        expected = serving_messages(row, file_reader(out))
        answers = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        recorder = Recorder(replies=[[a[: len(a) // 2], a[len(a) // 2 :]] for a in answers])
        service = VllmTranslatorService(
            TranslatorParams(url="http://vllm.test", model="rasst-de"),
            transport=recorder.transport(),
        )
        translator = await service.open_session(context("de", lm=meta["lm"]), lambda w: None)
        for i, turn in enumerate(meta["turns"]):
            start, end = round(turn["start"] * 16000), round(turn["end"] * 16000)
            chunk = AudioChunk(turn["chunk"], start, pcm[start:end], received_at=0.0)
            hits = TermHits(
                turn["chunk"],
                tuple(
                    TermHit(e["source"], {"de": e["target"]}, e["score"] or 1.0, start, end, "g")
                    for e in turn["term_map"]
                ),
            )
            commits = [
                e
                async for e in translator.translate(chunk, hits)
                if isinstance(e, TranslationCommit)
            ]
            assert commits[0].raw == answers[i]
            sent = recorder.bodies[-1]["messages"]
            # Up to and including this chunk's user turn (system, pairs, new user).
            assert _canonical(sent) == _canonical(expected[: 2 + 2 * i])
        await translator.aclose()
        await service.aclose()
