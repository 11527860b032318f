"""The corpus model and the SFT row format."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from server.translator.messages import audio_part, build_messages, build_user_turn
from server.translator.params import AudioPartStyle
from tests.training.support import chunk_record, segment_record
from training.corpus import CorpusRecord, corpus_schema, read_corpus, write_corpus
from training.sft_format import serving_messages, split_content, to_sft_row


def test_corpus_round_trip_resolves_relative_audio(tmp_path: Path) -> None:
    records = [segment_record(Path("a.wav")), chunk_record(Path("/abs/b.wav"))]
    path = tmp_path / "sub" / "corpus.jsonl"
    assert write_corpus(path, records) == 2
    back = list(read_corpus(path))
    assert back[0].audio == tmp_path / "sub" / "a.wav"
    assert back[1].audio == Path("/abs/b.wav")
    assert back[0].model_copy(update={"audio": Path("a.wav")}) == records[0]
    assert "segments" in json.dumps(corpus_schema())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chunks": None, "segments": None}, "exactly one"),
        ({"segments": ()}, "at least one"),
        ({"target_lang": ""}, "at least 2"),
    ],
)
def test_corpus_records_are_validated(change: dict[str, object], message: str) -> None:
    data = segment_record(Path("a.wav")).model_dump(mode="json") | change
    with pytest.raises(ValidationError, match=message):
        CorpusRecord.model_validate(data)


def test_overlapping_spans_and_half_timed_terms_are_refused(tmp_path: Path) -> None:
    data = segment_record(Path("a.wav")).model_dump(mode="json")
    data["segments"][1]["start"] = 3.0  # before the first segment ends
    with pytest.raises(ValidationError, match="time order"):
        CorpusRecord.model_validate(data)
    data = segment_record(Path("a.wav")).model_dump(mode="json")
    data["segments"][0]["terms"][0]["start"] = 1.0
    with pytest.raises(ValidationError, match="both start and end"):
        CorpusRecord.model_validate(data)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        list(read_corpus(bad))


@pytest.mark.parametrize("style", list(AudioPartStyle))
def test_sft_rows_carry_the_serving_wav_bytes(style: AudioPartStyle) -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.integers(-100, 100, 15360, dtype=np.int16) for _ in range(3)]
    turns = [
        build_user_turn(audio_part(pcm, style), terms)
        for pcm, terms in zip(
            chunks, [[("BLEU", "BLEU")], [], [("a", "b"), ("c", "d")]], strict=True
        )
    ]
    messages = build_messages("zh", [(turns[0], "甲"), (turns[1], "")], turns[2])
    files: dict[str, bytes] = {}
    row = to_sft_row(messages, ["0.wav", "1.wav", "2.wav"], files.__setitem__)
    assert [m["content"] for m in row["messages"][1:]] == [
        "<audio>\n\nterm_map:\nBLEU=BLEU",
        "甲",
        "<audio>",
        "",
        "<audio>\n\nterm_map:\na=b\nc=d",
    ]
    assert row["audios"] == ["0.wav", "1.wav", "2.wav"]
    assert serving_messages(row, files.__getitem__, style) == messages
    part = messages[1]["content"][0]
    data = (
        part["input_audio"]["data"]
        if style is AudioPartStyle.INPUT_AUDIO
        else part["audio_url"]["url"].split(",")[1]
    )
    assert files["0.wav"] == base64.b64decode(data)
    assert split_content("<audio>x<audio>") == [None, "x", None]


def test_a_placeholder_in_text_is_refused() -> None:
    messages = [{"role": "system", "content": "say <audio>"}]
    with pytest.raises(ValueError, match="placeholder"):
        to_sft_row(messages, [], lambda path, wav: None)
