"""Serving chunks from a corpus record: translation shares, gold terms, explicit chunks."""

from __future__ import annotations

from pathlib import Path

from tests.training.support import RATE, chunk_record, segment_record, timed_words
from training.chunking import ChunkingParams, plan_chunks
from training.corpus import CorpusRecord, CorpusSegment

TOTAL = 9 * RATE


def test_segment_translations_are_shared_out_whole_and_in_order() -> None:
    record = segment_record(Path("/x.wav"))
    for lm in (1, 2, 3, 4):
        chunks = plan_chunks(record, TOTAL, ChunkingParams(lm=lm))
        assert chunks[-1].end_sample == TOTAL
        assert all(c.end_sample - c.start_sample == 15_360 * lm for c in chunks[:-1])
        joined = " ".join(c.translation for c in chunks if c.translation)
        assert joined == " ".join(s.translation for s in record.segments)  # type: ignore[union-attr]


def test_a_term_is_never_translated_before_it_is_heard_nor_split() -> None:
    record = segment_record(Path("/x.wav"))
    chunks = plan_chunks(record, TOTAL, ChunkingParams(lm=1, lag_words=0))
    by_target: dict[str, int] = {}
    for chunk in chunks:
        for target in (
            "Sprachmodell",
            "BLEU",
            "Korpus",
            "Transformer",
            "Aufmerksamkeit",
            "Decoder",
        ):
            if target in chunk.translation:
                by_target[target] = chunk.index
    gold = {g.target: c.index for c in chunks for g in c.gold}
    assert set(by_target) == set(gold)
    for target, index in by_target.items():
        assert index >= gold[target], target
    # BLEU was given its time (3.0-3.3 s): it ends in the fourth 0.96 s chunk.
    assert gold["BLEU"] == 3


def test_the_rest_of_a_sentence_comes_with_its_last_word() -> None:
    record = segment_record(Path("/x.wav"))
    chunks = plan_chunks(record, TOTAL, ChunkingParams(lm=2, lag_words=2))
    # The first sentence's last word ends at 4.6 s: chunk 2 (3.84-5.76 s) closes it.
    assert chunks[2].translation.endswith("Korpus.")
    assert not chunks[0].translation  # only 0.92 s of speech heard, lag of two words
    assert [c.has_words for c in chunks] == [True, True, True, True, True]
    silent = plan_chunks(record, 12 * RATE, ChunkingParams(lm=2))
    assert not silent[-1].has_words  # after the last word: nothing to say


def test_cjk_pieces_join_without_spaces() -> None:
    source = "we train a language model"
    record = CorpusRecord(
        id="zh",
        audio=Path("/x.wav"),
        target_lang="zh",
        segments=(
            CorpusSegment(
                start=0.0,
                end=4.0,
                source=source,
                translation="我们训练一个语言模型。",
                words=timed_words(source, 0.0, 4.0),
            ),
        ),
    )
    chunks = plan_chunks(record, 4 * RATE, ChunkingParams(lm=1, lag_words=0))
    assert "".join(c.translation for c in chunks) == "我们训练一个语言模型。"
    assert sum(1 for c in chunks if c.translation) > 1


def test_explicit_chunks_are_used_as_given_with_fillers_for_gaps() -> None:
    chunks = plan_chunks(chunk_record(Path("/x.wav")), 6 * RATE, ChunkingParams())
    emitted = [c for c in chunks if c.emit]
    assert [c.translation for c in emitted] == ["Wir bewerten", "mit BLEU.", "Danke."]
    assert [(c.start, c.end) for c in emitted] == [(0.5, 2.0), (2.0, 3.5), (4.0, 5.0)]
    fillers = [(c.start, c.end) for c in chunks if not c.emit]
    assert fillers == [(0.0, 0.5), (3.5, 4.0), (5.0, 6.0)]
    assert [c.start_sample for c in chunks] == sorted(c.start_sample for c in chunks)
    assert emitted[1].gold[0].target == "BLEU"
