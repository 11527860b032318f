"""Wire models of the retriever service (shared by the service and the gateway's client).

A retrieve call is ``POST /v1/retrieve`` with the chunk's raw PCM (s16le, 16 kHz,
mono) as the body and a :class:`RetrieveQuery` as JSON in the ``X-Rasst-Query``
header: the audio stays binary, the small query rides along. Glossaries are
named by ``(id, version)``; a service that lacks one answers 409 with
:class:`MissingGlossaries`, and the client uploads it with
``PUT /v1/glossaries/{id}/versions/{version}`` and retries.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from glossary.model import GlossaryEntry, GlossarySnapshot
from kernel.frames import RecognizedWord, TermHit, TermHits

QUERY_HEADER = "X-Rasst-Query"


class GlossaryRef(BaseModel):
    id: str
    version: int


class WordIn(BaseModel):
    word: str
    start: int  # samples at 16 kHz from the stream start
    end: int

    @classmethod
    def of(cls, word: RecognizedWord) -> WordIn:
        return cls(word=word.word, start=word.start_sample, end=word.end_sample)

    def recognized(self) -> RecognizedWord:
        return RecognizedWord(self.word, self.start, self.end)


class RetrieveQuery(BaseModel):
    session_id: str = Field(max_length=128)
    chunk_index: int = Field(ge=0)
    start_sample: int = Field(ge=0)
    final: bool = False
    glossaries: list[GlossaryRef] = Field(max_length=16)
    target_languages: list[str] = Field(max_length=8)
    k: int = Field(default=10, ge=1, le=100)
    tau: float = 0.0
    # Word-level evidence from the gateway's Whisper captions (final and revisable words).
    words: list[WordIn] = Field(default_factory=list, max_length=2000)
    partial_words: list[WordIn] = Field(default_factory=list, max_length=2000)


class HitOut(BaseModel):
    source: str
    targets: dict[str, str]
    score: float
    start_sample: int
    end_sample: int
    glossary_id: str

    @classmethod
    def of(cls, hit: TermHit) -> HitOut:
        return cls(
            source=hit.source,
            targets=hit.targets,
            score=hit.score,
            start_sample=hit.start_sample,
            end_sample=hit.end_sample,
            glossary_id=hit.glossary_id,
        )

    def hit(self) -> TermHit:
        return TermHit(
            self.source,
            dict(self.targets),
            self.score,
            self.start_sample,
            self.end_sample,
            self.glossary_id,
        )


class RetrieveResult(BaseModel):
    chunk_index: int
    hits: list[HitOut]
    elapsed: float
    batch_size: int = 1

    @classmethod
    def of(cls, hits: TermHits, batch_size: int = 1) -> RetrieveResult:
        return cls(
            chunk_index=hits.chunk_index,
            hits=[HitOut.of(h) for h in hits.hits],
            elapsed=hits.elapsed,
            batch_size=batch_size,
        )

    def term_hits(self) -> TermHits:
        return TermHits(self.chunk_index, tuple(h.hit() for h in self.hits), self.elapsed)


class MissingGlossaries(BaseModel):
    missing: list[GlossaryRef]


class EntryIn(BaseModel):
    source: str
    targets: dict[str, list[str]]


class GlossaryUpload(BaseModel):
    tenant: str = ""
    name: str = ""
    source_language: str = "en"
    entries: list[EntryIn]

    @classmethod
    def of(cls, snapshot: GlossarySnapshot) -> GlossaryUpload:
        return cls(
            tenant=snapshot.tenant,
            name=snapshot.name,
            source_language=snapshot.source_language,
            entries=[
                EntryIn(source=e.source, targets={k: list(v) for k, v in e.targets.items()})
                for e in snapshot.entries
            ],
        )

    def snapshot(self, glossary_id: str, version: int) -> GlossarySnapshot:
        return GlossarySnapshot(
            glossary_id,
            version,
            self.tenant,
            self.name,
            self.source_language,
            tuple(
                GlossaryEntry(e.source, {k: tuple(v) for k, v in e.targets.items()})
                for e in self.entries
            ),
        )
