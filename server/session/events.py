"""Pure functions from pipeline frames to wire events (``server.protocol``).

Nothing here holds state or does I/O: the session numbers and sends what these return.
"""

from __future__ import annotations

from collections.abc import Sequence

from glossary.model import GlossarySnapshot
from kernel.errors import RasstError
from kernel.frames import (
    AudioChunk,
    ChunkAnalysis,
    StageWarning,
    TermHits,
    TranslationCommit,
    TranslationDelta,
    seconds,
)
from server.protocol import (
    Caption,
    ChunkDone,
    Error,
    GlossaryInUse,
    GlossaryUpdated,
    TermOut,
    Terms,
    TranslationCommitEvent,
    TranslationDeltaEvent,
    Warning_,
    Word,
)


def captions(chunk_index: int, analysis: ChunkAnalysis, utterance: int) -> list[Caption]:
    """The caption events of one slice's analysis; ``utterance`` numbers the first one.

    A final caption closes its utterance: the caption after it has the next number.
    """
    events: list[Caption] = []
    for caption in analysis.captions:
        events.append(
            Caption(
                chunk=chunk_index,
                start=seconds(caption.start_sample),
                end=seconds(caption.end_sample),
                utterance=utterance,
                text=caption.text,
                final=caption.final,
                stable_words=None if caption.final else caption.stable_words,
                words=[
                    Word(word=w.word, start=seconds(w.start_sample), end=seconds(w.end_sample))
                    for w in caption.words
                ],
            )
        )
        if caption.final:
            utterance += 1
    return events


def terms(chunk: AudioChunk, hits: TermHits) -> Terms:
    return Terms(
        chunk=chunk.index,
        start=chunk.start,
        end=chunk.end,
        terms=[
            TermOut(
                source=hit.source,
                targets=hit.targets,
                score=round(hit.score, 4),
                start=seconds(hit.start_sample),
                end=seconds(hit.end_sample),
                glossary_id=hit.glossary_id,
            )
            for hit in hits.hits
        ],
        retrieval_ms=round(hits.elapsed * 1000, 2),
    )


def translation_delta(
    chunk: AudioChunk, first_chunk: int, delta: TranslationDelta
) -> TranslationDeltaEvent:
    return TranslationDeltaEvent(
        chunk=chunk.index,
        first_chunk=first_chunk,
        start=chunk.start,
        end=chunk.end,
        lang=delta.lang,
        delta=delta.delta,
        text=delta.text,
    )


def translation_commit(
    chunk: AudioChunk, first_chunk: int, commit: TranslationCommit
) -> TranslationCommitEvent:
    return TranslationCommitEvent(
        chunk=chunk.index,
        first_chunk=first_chunk,
        start=chunk.start,
        end=chunk.end,
        lang=commit.lang,
        text=commit.text,
        terms_used=list(commit.terms_used),
        terms_missed=list(commit.terms_missed),
    )


def chunk_done(
    chunk: AudioChunk, speech_samples: int, processing: float, latency: float, lag: float
) -> ChunkDone:
    return ChunkDone(
        chunk=chunk.index,
        start=chunk.start,
        end=chunk.end,
        speech_seconds=seconds(speech_samples),
        processing_ms=round(processing * 1000, 2),
        latency_ms=round(latency * 1000, 2),
        lag_seconds=lag,
    )


def glossaries_in_use(snapshots: Sequence[GlossarySnapshot]) -> list[GlossaryInUse]:
    return [GlossaryInUse(id=g.id, version=g.version, entries=len(g.entries)) for g in snapshots]


def glossary_updated(snapshots: Sequence[GlossarySnapshot]) -> GlossaryUpdated:
    return GlossaryUpdated(glossaries=glossaries_in_use(snapshots))


def warning(stage_warning: StageWarning) -> Warning_:
    return Warning_(
        code=str(stage_warning.code),
        message=stage_warning.message,
        chunk=stage_warning.chunk_index,
        glossary_id=stage_warning.glossary_id,
        progress=stage_warning.progress,
    )


def error(exc: RasstError, *, fatal: bool) -> Error:
    return Error(code=exc.code, message=exc.message, fatal=fatal, detail=exc.detail)
