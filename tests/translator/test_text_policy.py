"""The text tier's simultaneous policy: segments at boundaries, a bounded wait, no word twice."""

from __future__ import annotations

import pytest

from kernel.frames import ChunkAnalysis, RecognizedWord, samples_for
from server.translator.text_policy import SegmentReason, TextPolicy, TextPolicyParams

CHUNK = samples_for(0.96)


def words(text: str, start: float, step: float = 0.3) -> tuple[RecognizedWord, ...]:
    """One word per ``step`` seconds from ``start``."""
    return tuple(
        RecognizedWord(w, samples_for(start + i * step), samples_for(start + (i + 1) * step - 0.02))
        for i, w in enumerate(text.split())
    )


def analysis(
    index: int,
    committed: tuple[RecognizedWord, ...] = (),
    partial: tuple[RecognizedWord, ...] = (),
) -> ChunkAnalysis:
    return ChunkAnalysis(index, speech_samples=CHUNK, words=committed, partial_words=partial)


def test_committed_words_are_sent_at_once_an_utterance_end_is_a_boundary() -> None:
    policy = TextPolicy(TextPolicyParams())
    segment = policy.push(analysis(0, words("hello there", 0.1)), CHUNK)
    assert segment is not None
    assert segment.text == "hello there"
    assert segment.reason is SegmentReason.UTTERANCE_END
    assert policy.push(analysis(1), 2 * CHUNK) is None, "nothing new, nothing sent"


def test_revisable_words_wait_for_a_clause_end_outside_the_guard() -> None:
    policy = TextPolicy(TextPolicyParams(max_wait_seconds=5.0, guard_seconds=0.3))
    tail = words("we trained the model, and then", 0.0)
    # 1.92 s: "model," ends at 1.18 s, "then" at 1.78 s (inside the guard: 1.62 s).
    assert policy.push(analysis(0, partial=tail[:2]), CHUNK) is None, "no clause end yet"
    segment = policy.push(analysis(1, partial=tail), 2 * CHUNK)
    assert segment is not None and segment.reason is SegmentReason.CLAUSE
    assert segment.text == "we trained the model,"


def test_no_word_waits_longer_than_the_bound() -> None:
    policy = TextPolicy(TextPolicyParams(max_wait_seconds=2.0, guard_seconds=0.3))
    tail = words("a long run of words without any punctuation at all here", 0.0)
    sent: list[str] = []
    for index in range(4):
        end = (index + 1) * CHUNK
        heard = tuple(w for w in tail if w.end_sample <= end)
        segment = policy.push(analysis(index, partial=heard), end)
        if segment is not None:
            assert segment.reason is SegmentReason.WAIT
            # The oldest word of the segment ended at most max_wait + one chunk before.
            assert end - segment.words[0].end_sample <= samples_for(2.0) + CHUNK
            sent.extend(w.word for w in segment.words)
    assert sent, "the bound forced a segment without a boundary"
    assert sent == [w.word for w in tail][: len(sent)], "in order, none twice"


def test_a_revised_tail_word_is_not_sent_again_when_committed() -> None:
    policy = TextPolicy(TextPolicyParams(max_wait_seconds=5.0))
    tail = words("the contrast of learning, works", 0.0)
    first = policy.push(analysis(0, partial=tail), samples_for(2.5))
    assert first is not None and first.text == "the contrast of learning,"
    # The recogniser's final decode revised the words it had sent.
    # "contrastive learning," spans the time of "contrast of learning,".
    final = (
        *words("the contrastive", 0.0),
        RecognizedWord("learning,", samples_for(0.6), samples_for(1.18)),
        *words("works well", 1.2),
    )
    second = policy.push(analysis(1, committed=final), samples_for(3.0))
    assert second is not None
    assert second.text == "works well", "matched by time, not by spelling"


def test_without_the_tail_only_committed_words_are_sent() -> None:
    policy = TextPolicy(TextPolicyParams(allow_tail=False, max_wait_seconds=1.0))
    tail = words("one, two, three, four, five, six, seven", 0.0)
    assert policy.push(analysis(0, partial=tail), samples_for(3.0)) is None
    segment = policy.push(analysis(1, committed=tail), samples_for(3.5))
    assert segment is not None and segment.text == tail_text(tail)


def tail_text(ws: tuple[RecognizedWord, ...]) -> str:
    return " ".join(w.word for w in ws)


def test_the_final_chunk_sends_everything_left_guard_included() -> None:
    policy = TextPolicy(TextPolicyParams(max_wait_seconds=5.0))
    tail = words("almost done", 0.0)
    assert policy.push(analysis(0, partial=tail), samples_for(0.65)) is None
    segment = policy.push(analysis(1, partial=tail), samples_for(0.7), final=True)
    assert segment is not None and segment.reason is SegmentReason.FINAL
    assert segment.text == "almost done"
    assert policy.pending_words() == 0


def test_committed_words_and_a_new_utterance_in_one_chunk() -> None:
    policy = TextPolicy(TextPolicyParams(max_wait_seconds=5.0))
    done = words("first sentence.", 0.0)
    new = words("second", 1.0)
    segment = policy.push(analysis(0, committed=done, partial=new), samples_for(1.4))
    assert segment is not None and segment.text == "first sentence."
    assert policy.pending_words() == 1


@pytest.mark.parametrize(("wait", "guard"), [(0.0, 0.0), (1.0, 1.0), (1.0, -0.1)])
def test_bad_parameters_are_refused(wait: float, guard: float) -> None:
    with pytest.raises(ValueError):
        TextPolicyParams(max_wait_seconds=wait, guard_seconds=guard)


def test_merged_chunks_keep_all_committed_words_and_the_latest_live_hypothesis() -> None:
    from server.catchup import merge_analyses

    first, second = words("one two.", 0.0), words("three", 1.0)
    merged = merge_analyses([analysis(0, committed=first), analysis(1, partial=second)], 1)
    assert merged.words == first and merged.partial_words == second
    # A hypothesis followed by its utterance's final words is stale.
    stale = merge_analyses([analysis(0, partial=second), analysis(1, committed=first)], 1)
    assert stale.words == first and stale.partial_words == ()
    assert merged.chunk_index == 1 and merged.speech_samples == 2 * CHUNK
