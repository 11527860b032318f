"""Interfaces of the pluggable session stages: retrieval and translation.

The gateway builds one *service* of each kind at start-up (long-lived: indexes,
HTTP clients, connection pools) and asks it for a per-session object when a
session starts. A per-session object owns that session's state and nothing
else, and is closed in the session's ``finally``.

Both stages may degrade: instead of raising, they report a
:class:`~kernel.frames.StageWarning` through the ``warn`` callback they are
given and carry on (no term_map, captions only), recovering by themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from glossary.model import GlossarySnapshot
from kernel.frames import (
    AudioChunk,
    ChunkAnalysis,
    StageWarning,
    TermHits,
    TranslationCommit,
    TranslationDelta,
)

WarnFn = Callable[[StageWarning], None]


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What every per-session stage may know about its session."""

    session_id: str
    tenant: str
    source_language: str
    target_languages: tuple[str, ...]
    lm: int
    chunk_seconds: float


# -- retrieval ---------------------------------------------------------------


class SessionRetriever(Protocol):
    """Finds glossary terms in a session's audio, one chunk at a time."""

    async def retrieve(self, chunk: AudioChunk, analysis: ChunkAnalysis) -> TermHits: ...

    def set_glossaries(self, glossaries: Sequence[GlossarySnapshot]) -> None:
        """Replace the glossaries in use (a live update); takes effect on a later chunk."""
        ...

    async def aclose(self) -> None: ...


class RetrieverService(Protocol):
    async def open_session(
        self,
        context: SessionContext,
        glossaries: Sequence[GlossarySnapshot],
        warn: WarnFn,
    ) -> SessionRetriever: ...


class NoRetriever:
    """The retrieve stage when no glossary is in use: never finds anything."""

    async def retrieve(self, chunk: AudioChunk, analysis: ChunkAnalysis) -> TermHits:
        return TermHits(chunk_index=chunk.index)

    def set_glossaries(self, glossaries: Sequence[GlossarySnapshot]) -> None:
        return None

    async def aclose(self) -> None:
        return None


# -- translation ---------------------------------------------------------------

TranslationEvent = TranslationDelta | TranslationCommit


class SessionTranslator(Protocol):
    """Translates a session's chunks in order, keeping the LLM history.

    ``translate`` is called once per chunk, strictly in chunk order; it yields
    zero or more deltas and then exactly one commit per target language.
    Cancelling the iteration cancels the upstream request. ``analysis`` is what
    the speech front end found in the chunk (its caption words): the text tier
    translates those, the speech tier listens to the audio instead.
    """

    def translate(
        self, chunk: AudioChunk, terms: TermHits, analysis: ChunkAnalysis | None = None
    ) -> AsyncIterator[TranslationEvent]: ...

    async def aclose(self) -> None: ...


class TranslatorService(Protocol):
    async def open_session(self, context: SessionContext, warn: WarnFn) -> SessionTranslator: ...
