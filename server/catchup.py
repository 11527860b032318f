"""Catching up when translation falls behind: consecutive chunks become one LLM turn.

When the LLM is slower than the speaker, chunks queue up behind it. Translating
them one request each would never close the gap; merging the queued chunks
(up to a length the model handles well) into one user turn costs one request,
keeps the history one turn per request, and loses no audio.

A merged turn is treated as what it is, one longer chunk: its token budget
follows its audio length (:func:`server.translator.params.DecodingParams.max_tokens`),
and its term_map holds at most the top ``MAX_MERGED_TERMS`` terms by score,
the same cap one retrieval call has (K2 = 10), so a long catch-up turn never
carries an unbounded glossary list the model was not trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kernel.frames import (
    AudioChunk,
    ChunkAnalysis,
    RecognizedWord,
    TermHit,
    TermHits,
    samples_for,
)

# The longest chunk the reference models were trained on (lm = 4).
MAX_MERGED_SECONDS = 3.84
# Terms per merged turn: one retrieval call's K2 (the release's top-10).
MAX_MERGED_TERMS = 10


def merge_limit_samples(chunk_samples: int) -> int:
    """How much audio one catch-up turn may carry: 3.84 s, or two chunks when those are longer."""
    return max(samples_for(MAX_MERGED_SECONDS), 2 * chunk_samples)


def merge_chunks(chunks: Sequence[AudioChunk]) -> AudioChunk:
    """Consecutive chunks as one: the last one's index, the first one's start."""
    if len(chunks) == 1:
        return chunks[0]
    for before, after in zip(chunks, chunks[1:], strict=False):
        if after.start_sample != before.end_sample:
            raise ValueError("only consecutive chunks can be merged")
    last = chunks[-1]
    return AudioChunk(
        index=last.index,
        start_sample=chunks[0].start_sample,
        pcm=np.concatenate([c.pcm for c in chunks]),
        received_at=last.received_at,
        final=last.final,
    )


def merge_terms(
    hits: Sequence[TermHits], chunk_index: int, limit: int = MAX_MERGED_TERMS
) -> TermHits:
    """Terms of several chunks: best score per source term, best first, the top ``limit``."""
    best: dict[str, TermHit] = {}
    for group in hits:
        for hit in group.hits:
            kept = best.get(hit.source)
            if kept is None or hit.score > kept.score:
                best[hit.source] = hit
    ordered = sorted(best.values(), key=lambda h: h.score, reverse=True)
    return TermHits(
        chunk_index=chunk_index,
        hits=tuple(ordered[: max(0, limit)]),
        elapsed=sum(h.elapsed for h in hits),
    )


def merge_analyses(analyses: Sequence[ChunkAnalysis], chunk_index: int) -> ChunkAnalysis:
    """The front end's findings for consecutive chunks as one (for the text tier).

    Committed words in order; the revisable words are the open utterance's
    latest hypothesis: the last chunk's that has one, unless a later chunk
    committed words (that utterance ended; its hypothesis is stale).
    """
    if len(analyses) == 1:
        return analyses[0]
    partial: tuple[RecognizedWord, ...] = ()
    for analysis in reversed(analyses):
        if analysis.partial_words:
            partial = analysis.partial_words
            break
        if analysis.words:
            break
    return ChunkAnalysis(
        chunk_index=chunk_index,
        speech_samples=sum(a.speech_samples for a in analyses),
        captions=tuple(c for a in analyses for c in a.captions),
        words=tuple(w for a in analyses for w in a.words),
        partial_words=partial,
    )
