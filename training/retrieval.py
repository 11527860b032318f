"""The embedded retriever replayed offline over a recording, chunk by chunk, as a session runs it.

A gateway session (``server/session.py``) sends each chunk through the speech front end
(silero VAD + Whisper captions with the glossary's hotwords) and, when the chunk has
speech, through :class:`retriever.word_evidence.WordEvidenceRetriever`. This module does
the same, so the hard negatives in the SFT data are the terms the served retriever would
really put in front of the model for that audio. It also says which chunks have speech:
serving never sends a silent chunk to the model.

Decoding is the expensive half (Whisper, about 10-25× faster than real time on one
core): :func:`analyse_recording` runs it once per recording in 0.96 s pieces, in a worker
process; chunks of any lm are unions of pieces (:func:`merge_analyses`), which gives the
same words a front end fed with whole chunks gives. Scoring (:func:`retrieve_chunks`,
milliseconds per chunk) then runs once per lm.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from glossary.model import GlossarySnapshot
from kernel.frames import ChunkAnalysis, TermHits
from retriever.aggregate import AggregationParams
from retriever.index import IndexManager, IndexParams
from retriever.phonetic import PhoneticTermEncoder
from retriever.word_evidence import TextMatchers, WordEvidenceRetriever, WordRetrievalParams
from server.asr.front_end import FrontEndParams, SliceIn, SpeechFrontEnd, default_vad_factory
from server.asr.models import AsrModelParams, load_model
from server.asr.recognizer import WhisperRecognizer


@dataclass(frozen=True, slots=True)
class OfflineRetrievalParams:
    """The gateway's retrieval settings (the CLI takes them from ``server.settings``)."""

    cache_dir: Path
    tau: float = 0.85
    top_k: int = 10
    candidates: int = 100
    # Bias the recogniser toward the glossary, as sessions do (RASST_ASR_HOTWORDS).
    hotwords: bool = True
    # Hits down to this score are kept as hard-negative candidates (only wrong ones are
    # used below ``tau``; at or above it, a chunk's hits are exactly what serving shows).
    negative_tau: float = 0.5

    def __post_init__(self) -> None:
        if self.negative_tau > self.tau:
            raise ValueError(f"negative_tau {self.negative_tau} is above tau {self.tau}")


@dataclass(frozen=True, slots=True)
class ChunkRetrieval:
    hits: TermHits
    has_speech: bool


@dataclass(slots=True)
class GlossaryContext:
    """A glossary's term index and hotwords, built once and used for every recording."""

    snapshot: GlossarySnapshot
    params: OfflineRetrievalParams
    indexes: IndexManager = field(init=False)
    hotwords: str = field(init=False, default="")

    def __post_init__(self) -> None:
        from server.asr.hotwords import hotwords_for

        self.indexes = IndexManager(PhoneticTermEncoder(), IndexParams())
        self.indexes.update(self.snapshot).result()
        if self.params.hotwords:
            self.hotwords = hotwords_for([self.snapshot])

    def close(self) -> None:
        self.indexes.close()


@functools.cache
def _recognizer() -> WhisperRecognizer:
    """The gateway's default model, loaded once per process."""
    return WhisperRecognizer(load_model(AsrModelParams()))


def analyse_recording(
    pcm: np.ndarray, bounds: Sequence[tuple[int, int]], hotwords: str
) -> list[ChunkAnalysis]:
    """The speech front end's analysis of each piece of ``pcm`` (blocking, CPU-bound)."""
    front = SpeechFrontEnd(FrontEndParams(), default_vad_factory(), _recognizer())
    front.set_hotwords(hotwords)
    out = []
    for index, (start, end) in enumerate(bounds):
        final = index == len(bounds) - 1
        out += front.process([SliceIn(index, start, pcm[start:end], final)], partial=not final)
    return out


def merge_analyses(pieces: Sequence[ChunkAnalysis], chunk_index: int) -> ChunkAnalysis:
    """Consecutive pieces as one chunk: all final words, the last piece's open utterance."""
    return ChunkAnalysis(
        chunk_index=chunk_index,
        speech_samples=sum(p.speech_samples for p in pieces),
        words=tuple(w for p in pieces for w in p.words),
        partial_words=pieces[-1].partial_words if pieces else (),
    )


def group_pieces(
    pieces: Sequence[ChunkAnalysis],
    piece_bounds: Sequence[tuple[int, int]],
    bounds: Sequence[tuple[int, int]],
) -> list[ChunkAnalysis]:
    """Each chunk's merged analysis; every chunk must be a union of whole pieces."""
    starts = {start: i for i, (start, _) in enumerate(piece_bounds)}
    out = []
    for index, (start, end) in enumerate(bounds):
        first = starts.get(start)
        if first is None:
            raise ValueError(f"chunk {index} does not start on a piece boundary")
        last = first
        while piece_bounds[last][1] < end:
            last += 1
        if piece_bounds[last][1] != end:
            raise ValueError(f"chunk {index} does not end on a piece boundary")
        out.append(merge_analyses(pieces[first : last + 1], index))
    return out


def retrieve_chunks(
    context: GlossaryContext,
    analyses: Sequence[ChunkAnalysis],
    bounds: Sequence[tuple[int, int]],
    target_lang: str,
) -> list[ChunkRetrieval]:
    """Per chunk: the terms a session would retrieve (silent chunks: none, as in serving),
    plus lower-scored ones down to ``negative_tau`` (the hits at or above ``tau`` are the
    served ones: the same top-K, since every lower hit ranks below them)."""
    params = context.params
    aggregation = AggregationParams(k1=params.top_k, k2=params.top_k, tau=params.negative_tau)
    retriever = WordEvidenceRetriever(
        context.indexes,
        TextMatchers(),
        [context.snapshot.id],
        [target_lang],
        WordRetrievalParams(aggregation, candidates=params.candidates, report_tau=params.tau),
    )
    out = []
    for index, (analysis, (start, end)) in enumerate(zip(analyses, bounds, strict=True)):
        hits = TermHits(chunk_index=index)
        if analysis.has_words:  # as the gateway session decides (server/session.py)
            hits = retriever.process(
                index,
                start,
                end,
                analysis.words,
                analysis.partial_words,
                final=index == len(bounds) - 1,
            )
        out.append(ChunkRetrieval(hits, analysis.has_speech))
    return out
