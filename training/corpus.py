"""The speech-translation corpus the SFT data builder reads: one JSONL line per recording.

A record is one continuous recording (a talk, or one segment cut from one) with its target
language and either

* ``segments``: sentence-like spans with their source text, reference translation, optional
  word timestamps and gold terms. The builder cuts the audio into serving chunks
  (0.96 s × lm) and derives each chunk's share of the translation
  (:mod:`training.chunking`); or
* ``chunks``: explicit chunk boundaries, each with the translation increment to emit for
  it (for users who aligned their own data). Chunks are used as given.

Times are seconds from the start of ``audio``. ``audio`` is a WAV file (any sample rate,
mono or stereo, 16-bit PCM); a relative path is relative to the JSONL file. A gold term is
a glossary pair whose source is spoken and whose target occurs in the reference; ``start``
and ``end`` (when known) say where it is spoken.

Example (one line, wrapped)::

    {"id": "talk-1", "audio": "talk-1.wav", "target_lang": "de",
     "segments": [{"start": 2.4, "end": 11.6,
                   "source": "Hi, this is Elena and ... an Annotated Corpus ...",
                   "translation": "Hallo, hier ist Elena und ... ein annotierter Korpus ...",
                   "words": [{"start": 2.6, "end": 3.1, "word": "Hi"}, ...],
                   "terms": [{"source": "Annotated Corpus", "target": "annotierter Korpus",
                              "start": 9.1, "end": 10.2}]}]}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Span(_Model):
    start: float = Field(ge=0)
    end: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class CorpusWord(_Span):
    """One spoken source word (forced alignment or ASR timestamps)."""

    word: str


class CorpusTerm(_Model):
    """A gold glossary pair of a segment or chunk; times where it is spoken, when known."""

    source: str = Field(min_length=1)
    target: str = Field(min_length=1)
    start: float | None = Field(default=None, ge=0)
    end: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _both_times(self) -> Self:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end of a term, or neither")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"term {self.source!r} ends before it starts")
        return self


class CorpusSegment(_Span):
    """A sentence-like span: source text, its reference translation, words, gold terms."""

    source: str
    translation: str
    words: tuple[CorpusWord, ...] = ()
    terms: tuple[CorpusTerm, ...] = ()


class CorpusChunk(_Span):
    """An explicit chunk: the translation increment the model should write for it."""

    translation: str
    source: str = ""
    terms: tuple[CorpusTerm, ...] = ()


class CorpusRecord(_Model):
    id: str = Field(min_length=1)
    audio: Path
    target_lang: str = Field(min_length=2)
    source_lang: str = "en"
    segments: tuple[CorpusSegment, ...] | None = None
    chunks: tuple[CorpusChunk, ...] | None = None

    @model_validator(mode="after")
    def _one_layout(self) -> Self:
        if (self.segments is None) == (self.chunks is None):
            raise ValueError("a record has either segments or chunks (exactly one of them)")
        spans: tuple[_Span, ...] = self.segments if self.segments is not None else self.chunks  # type: ignore[assignment]
        if not spans:
            raise ValueError("a record needs at least one segment or chunk")
        for before, after in zip(spans, spans[1:], strict=False):
            if after.start < before.end - 1e-6:
                raise ValueError(
                    f"spans must be in time order without overlap ({before.end} > {after.start})"
                )
        return self

    def resolve_audio(self, base: Path) -> CorpusRecord:
        """The record with ``audio`` made absolute against ``base`` (the JSONL's folder)."""
        if self.audio.is_absolute():
            return self
        return self.model_copy(update={"audio": (base / self.audio).resolve()})


def read_corpus(path: Path) -> Iterator[CorpusRecord]:
    """Records of a corpus JSONL, audio paths resolved; errors name the line."""
    base = path.resolve().parent
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = CorpusRecord.model_validate_json(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
            yield record.resolve_audio(base)


def write_corpus(path: Path, records: Iterable[CorpusRecord]) -> int:
    """Write records as JSONL (audio paths as given); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            data = record.model_dump(mode="json", exclude_none=True)
            handle.write(json.dumps(data, ensure_ascii=False) + "\n")
            count += 1
    return count


def corpus_schema() -> dict[str, object]:
    """The JSON schema of one corpus line (for docs and validators)."""
    return CorpusRecord.model_json_schema()
