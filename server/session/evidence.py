"""What the speech front end said about the chunk being filled, and an analysed chunk."""

from __future__ import annotations

from dataclasses import dataclass

from kernel.frames import AudioChunk, ChunkAnalysis, RecognizedWord, TermHits


class ChunkEvidence:
    """What the front end said about the slices of the chunk being filled.

    The open utterance's revisable words outlive the chunk (a chunk whose slices
    got no revisable decode still has the last ones); they are dropped when the
    utterance's final words arrive.
    """

    def __init__(self) -> None:
        self._speech = 0
        self._words: list[RecognizedWord] = []
        self._partial: tuple[RecognizedWord, ...] = ()

    def add(self, analysis: ChunkAnalysis) -> None:
        self._speech += analysis.speech_samples
        if analysis.words:
            self._words.extend(analysis.words)
            self._partial = ()
        if analysis.partial_words:
            self._partial = analysis.partial_words

    def take(self, chunk_index: int) -> ChunkAnalysis:
        analysis = ChunkAnalysis(
            chunk_index=chunk_index,
            speech_samples=self._speech,
            words=tuple(self._words),
            partial_words=self._partial,
        )
        self._speech = 0
        self._words = []
        return analysis


@dataclass(frozen=True, slots=True)
class AnalysedChunk:
    """A chunk through the front end and retrieval, on its way to translation."""

    chunk: AudioChunk
    analysis: ChunkAnalysis
    terms: TermHits
    started_at: float
