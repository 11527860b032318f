from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.dataset import (
    AlignedWord,
    GoldTerm,
    Segment,
    SegmentTiming,
    Talk,
    default_words_file,
    load_talks,
    load_words,
    match_tokens,
    resolve_dataset,
    term_occurrences,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "acl6060"


def test_shared_dev_set_loads_in_file_order() -> None:
    jsonl = resolve_dataset(SHARED, "de")
    talks = load_talks(jsonl)
    assert [t.talk_id for t in talks][:2] == ["2022.acl-long.268", "2022.acl-long.367"]
    assert sum(len(t.segments) for t in talks) == 468
    sliced = load_talks(jsonl, talk_ids=["2022.acl-long.110"], max_segments=3)
    assert len(sliced) == 1 and [s.index for s in sliced[0].segments] == [0, 1, 2]
    words = default_words_file(jsonl)
    assert words is not None
    assert len(load_words(words)["2022.acl-long.268"]) > 1000
    with pytest.raises(KeyError):
        load_talks(jsonl, talk_ids=["nope"])


def test_resolve_dataset_prefix(tmp_path: Path) -> None:
    path = tmp_path / "dev.en-zh.jsonl"
    path.write_text("")
    assert resolve_dataset(tmp_path, "zh") == path
    assert resolve_dataset(tmp_path / "dev", "zh") == path
    with pytest.raises(FileNotFoundError):
        resolve_dataset(tmp_path, "ja")


def test_match_tokens_splits_hyphens_and_drops_punctuation() -> None:
    assert match_tokens("BiLSTM-CRF, it's F1!") == ["bilstm", "crf", "it's", "f1"]


def test_term_occurrences_are_scaled_to_synthesised_timing() -> None:
    segment = Segment(
        "t",
        1,
        0,
        "the CRF and the BiLSTM-CRF tagger, the CRF",
        "ref",
        (GoldTerm("CRF", "CRF"), GoldTerm("tagger", "Tagger"), GoldTerm("lexicon", "Lexikon")),
        10.0,
        20.0,
    )
    words = [
        AlignedWord(10.0, 11.0, "the"),
        AlignedWord(11.0, 12.0, "crf"),
        AlignedWord(12.0, 13.0, "and"),
        AlignedWord(13.0, 14.0, "the"),
        AlignedWord(14.0, 16.0, "bilstm-crf"),
        AlignedWord(16.0, 17.0, "tagger"),
        AlignedWord(17.0, 18.0, "the"),
        AlignedWord(18.0, 19.0, "crf"),
        AlignedWord(25.0, 26.0, "crf"),  # another segment's word
    ]
    # Synthesised at half the length, starting at 2 s.
    timing = [SegmentTiming(1, 2.0, 7.0)]
    found = term_occurrences(Talk("t", (segment,)), timing, words)
    crf = [(o.start, o.end) for o in found if o.en == "CRF"]
    assert crf == [(2.5, 3.0), (4.0, 5.0), (6.0, 6.5)]
    tagger = [o for o in found if o.en == "tagger"]
    assert [(o.start, o.end, o.aligned) for o in tagger] == [(5.0, 5.5, True)]
    # Not in the alignment: the whole synthesised segment span.
    lexicon = [o for o in found if o.en == "lexicon"]
    assert [(o.start, o.end, o.aligned) for o in lexicon] == [(2.0, 7.0, False)]


def test_load_talks_sorts_segments(tmp_path: Path) -> None:
    rows = [
        {
            "talk_id": "a",
            "seg_id": 2,
            "talk_seg_idx": 1,
            "en": "b",
            "ref": "B",
            "terms": [],
            "audio": {"start": 3.0, "end": 4.0},
        },
        {
            "talk_id": "a",
            "seg_id": 1,
            "talk_seg_idx": 0,
            "en": "a",
            "ref": "A",
            "terms": [{"en": "x", "tgt": "y"}],
            "audio": {"start": 1.0, "end": 2.0},
        },
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (talk,) = load_talks(path)
    assert [s.seg_id for s in talk.segments] == [1, 2]
    assert talk.segments[0].terms == (GoldTerm("x", "y"),)
