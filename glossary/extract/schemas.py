"""Wire models of ``POST /v1/glossaries/extract``: the glossary draft.

A draft is a glossary in our own JSON format (``format``, ``name``,
``source_language``, ``entries`` of ``source``/``targets``/``note``/``priority``)
plus, per entry, the score and the evidence behind it, and for the whole draft
where it came from. Saved to a file, reviewed and uploaded with
``POST /v1/glossaries``, the extra fields are ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from glossary.extract.keyphrases import TermKind
from glossary.extract.model import DocumentFormat
from glossary.schemas import EntryIn, GlossaryWritten

LlmStatus = Literal["kept", "unchecked", "off"]


class TermOccurrence(BaseModel):
    file: str
    page: int | None = Field(description="1-based page (PDF) or slide (PPTX); null otherwise.")
    offset: int = Field(description="Character offset into the file's extracted text.")
    context: str = Field(description="The text around the occurrence.")


class TermEvidence(BaseModel):
    kind: TermKind
    count: int = Field(description="Occurrences in all files.")
    first: TermOccurrence
    expansion: str | None = Field(
        default=None, description="For an acronym: the long form the documents define."
    )
    llm: LlmStatus = Field(
        description="kept: the LLM judged it a term; unchecked: the LLM step failed for it; "
        "off: no LLM step."
    )


class DraftEntry(BaseModel):
    source: str
    targets: dict[str, list[str]] = Field(
        description="Language -> translations; empty lists for the user to fill."
    )
    note: str | None = None
    priority: int = 0
    score: float = Field(description="The statistical score; entries are sorted by it.")
    evidence: TermEvidence

    def entry(self) -> EntryIn:
        """The entry as ``POST /v1/glossaries`` takes it, without the evidence."""
        return EntryIn(
            source=self.source,
            targets={lang: values for lang, values in self.targets.items() if values},
            note=self.note,
            priority=self.priority,
        )


class SourceFile(BaseModel):
    filename: str
    format: DocumentFormat
    bytes: int
    pages: int | None = Field(description="Pages of a PDF, slides of a PPTX.")
    characters: int = Field(description="Characters of text read from the file.")


class SourceStats(BaseModel):
    files: list[SourceFile]
    pages: int
    characters: int


class LlmSummary(BaseModel):
    used: bool
    model: str | None = None
    candidates: int = Field(default=0, description="Candidates sent to the LLM.")
    kept: int = 0
    dropped: int = 0
    unchecked: int = Field(default=0, description="Candidates kept because the LLM failed.")
    batches: int = 0
    failed_batches: int = 0


class DraftWarning(BaseModel):
    code: str = Field(description="A stable code: limit_exceeded, llm_unavailable, ...")
    message: str
    file: str | None = None


class GlossaryDraft(BaseModel):
    # glossary.formats.json_formats.OWN_FORMAT_TAG: the draft is an uploadable glossary.
    format: Literal["rasst-glossary"] = "rasst-glossary"
    name: str
    source_language: str = "en"
    target_languages: list[str]
    entries: list[DraftEntry]
    sources: SourceStats
    llm: LlmSummary
    warnings: list[DraftWarning] = Field(default_factory=list)
    glossary_id: str | None = Field(default=None, description="Set when saved (save=true).")
    saved: GlossaryWritten | None = Field(
        default=None, description="The upload answer of the saved glossary (save=true)."
    )
