from __future__ import annotations

import numpy as np
import pytest

from kernel.frames import AudioChunk, TermHit, TermHits
from server.catchup import merge_chunks, merge_limit_samples, merge_terms


def _chunk(index: int, size: int = 4) -> AudioChunk:
    return AudioChunk(index, index * size, np.full(size, index, np.int16), received_at=float(index))


def _hit(source: str, score: float) -> TermHit:
    return TermHit(source, {"de": source.upper()}, score, 0, 1, "g")


def test_merged_chunks_keep_every_sample_and_span_the_run() -> None:
    merged = merge_chunks([_chunk(3), _chunk(4), _chunk(5)])
    assert merged.index == 5
    assert (merged.start_sample, merged.end_sample) == (12, 24)
    assert merged.pcm.tolist() == [3] * 4 + [4] * 4 + [5] * 4
    assert merged.received_at == 5.0


def test_a_single_chunk_is_left_alone() -> None:
    chunk = _chunk(1)
    assert merge_chunks([chunk]) is chunk


def test_gaps_are_refused() -> None:
    with pytest.raises(ValueError):
        merge_chunks([_chunk(1), _chunk(3)])


def test_merged_terms_keep_the_best_score_per_source_best_first() -> None:
    merged = merge_terms(
        [
            TermHits(1, (_hit("bleu", 0.9), _hit("corpus", 0.5)), elapsed=0.1),
            TermHits(2, (_hit("corpus", 0.8), _hit("lora", 0.7)), elapsed=0.2),
        ],
        chunk_index=2,
    )
    assert [(h.source, h.score) for h in merged.hits] == [
        ("bleu", 0.9),
        ("corpus", 0.8),
        ("lora", 0.7),
    ]
    assert merged.chunk_index == 2 and merged.elapsed == pytest.approx(0.3)
    assert merged.term_map("de") == [("bleu", "BLEU"), ("corpus", "CORPUS"), ("lora", "LORA")]


@pytest.mark.parametrize(("lm", "seconds"), [(1, 3.84), (2, 3.84), (3, 5.76), (4, 7.68)])
def test_merge_limit(lm: int, seconds: float) -> None:
    assert merge_limit_samples(15360 * lm) == round(seconds * 16000)


def test_merged_term_map_is_capped_at_the_top_ten_by_score() -> None:
    groups = [
        TermHits(i, tuple(_hit(f"t{i}-{j}", 0.5 + 0.01 * (i * 6 + j)) for j in range(6)))
        for i in range(3)
    ]
    merged = merge_terms(groups, chunk_index=2)
    scores = sorted((h.score for g in groups for h in g.hits), reverse=True)[:10]
    assert len(merged.hits) == 10
    assert [h.score for h in merged.hits] == scores
    assert len(merge_terms(groups, chunk_index=2, limit=3).hits) == 3
