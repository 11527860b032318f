"""Frames passed between the stages of a session.

Frozen dataclasses, one per thing that flows; the name says whether it is
partial (may still change) or final. Times are integer sample offsets at the
pipeline rate (16 kHz) from the start of the stream; seconds are derived in one
place (:func:`seconds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PIPELINE_RATE = 16_000
"""Every stage after the resampler works on 16 kHz mono int16 audio."""


def seconds(samples: int) -> float:
    """Audio time in seconds for a sample offset at the pipeline rate."""
    return round(samples / PIPELINE_RATE, 4)


def samples_for(seconds_: float) -> int:
    return round(seconds_ * PIPELINE_RATE)


@dataclass(frozen=True, slots=True, eq=False)
class AudioChunk:
    """One chunk of 16 kHz audio, the unit of retrieval and translation."""

    index: int
    start_sample: int
    pcm: np.ndarray  # int16, mono, PIPELINE_RATE
    # time.monotonic() when the chunk's last sample reached the server.
    received_at: float
    # The last chunk of the stream (shorter than the others when flushed).
    final: bool = False

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.pcm)

    @property
    def start(self) -> float:
        return seconds(self.start_sample)

    @property
    def end(self) -> float:
        return seconds(self.end_sample)

    @property
    def duration(self) -> float:
        return seconds(len(self.pcm))


@dataclass(frozen=True, slots=True, eq=False)
class AudioSlice:
    """A piece of a chunk: the speech front end's cadence (finer than the chunk's).

    Captions follow the speaker within a slice's length whatever the chunk size;
    the slice that completes a chunk carries it, for retrieval and translation.
    """

    chunk_index: int
    start_sample: int
    pcm: np.ndarray  # int16, mono, PIPELINE_RATE
    # The chunk this slice completes, if it does.
    chunk: AudioChunk | None = None
    # The last slice of the stream.
    final: bool = False

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.pcm)


@dataclass(frozen=True, slots=True)
class RecognizedWord:
    """A word of the source caption with its audio span (samples)."""

    word: str
    start_sample: int
    end_sample: int
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class SourceCaption:
    """Source-language caption of one utterance; ``final`` once it no longer changes."""

    text: str
    start_sample: int
    end_sample: int
    final: bool
    words: tuple[RecognizedWord, ...] = ()
    # Revisable captions: how many leading words two successive decodes agreed on.
    stable_words: int = 0


@dataclass(frozen=True, slots=True)
class ChunkAnalysis:
    """What the speech front end found in a chunk: voice activity and captions."""

    chunk_index: int
    speech_samples: int
    captions: tuple[SourceCaption, ...] = ()
    # Words finalised while processing this chunk (for word-level retrieval evidence).
    words: tuple[RecognizedWord, ...] = ()
    # The open utterance's current best words (may still change; for retrieval).
    partial_words: tuple[RecognizedWord, ...] = ()

    @property
    def has_speech(self) -> bool:
        return self.speech_samples > 0

    @property
    def has_words(self) -> bool:
        """Worth retrieving: speech here, or an utterance's last words settled in this chunk.

        The recogniser finalises an utterance once the VAD has heard it end, which is
        often in a chunk of silence; those final words are new evidence all the same.
        """
        return self.speech_samples > 0 or bool(self.words)


@dataclass(frozen=True, slots=True)
class TermHit:
    """One glossary term retrieved for a chunk."""

    source: str
    # target language -> translation, only the session's target languages.
    targets: dict[str, str]
    score: float
    start_sample: int
    end_sample: int
    glossary_id: str


@dataclass(frozen=True, slots=True)
class TermHits:
    """The terms retrieved for one chunk, best first."""

    chunk_index: int
    hits: tuple[TermHit, ...] = ()
    # Wall seconds the retrieval took (for the overhead ratio).
    elapsed: float = 0.0

    def term_map(self, lang: str) -> list[tuple[str, str]]:
        """``(source, target)`` pairs for ``lang``: best first, one per source."""
        seen: set[str] = set()
        pairs: list[tuple[str, str]] = []
        for hit in self.hits:
            target = hit.targets.get(lang)
            if target is None or hit.source in seen:
                continue
            seen.add(hit.source)
            pairs.append((hit.source, target))
        return pairs


@dataclass(frozen=True, slots=True)
class TranslationDelta:
    """New text for a chunk's translation; revisable until the commit."""

    chunk_index: int
    lang: str
    delta: str
    # The whole visible (tag-free) text of this chunk so far.
    text: str


@dataclass(frozen=True, slots=True)
class TranslationCommit:
    """The final translation of a chunk, tags removed."""

    chunk_index: int
    lang: str
    text: str
    terms_used: tuple[str, ...] = ()
    # Terms the text tier found in the source words but not rendered in ``text``
    # (the speech tier has no source words to check: always empty there).
    terms_missed: tuple[str, ...] = ()
    # The model's raw output (tags kept) — what goes back into the LLM history.
    raw: str = ""
    time_to_first_token: float | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StageWarning:
    """A degraded-but-running condition to tell the client about."""

    code: str
    message: str
    chunk_index: int | None = None
    # glossary_indexing: which glossary, and how far its index build is (0…1).
    glossary_id: str | None = None
    progress: float | None = None
