"""Drafting a glossary from documents: read them, rank candidate terms, ask the LLM, assemble.

The blocking part (reading the files, ranking candidates) runs in a worker
thread under the caller's capacity limiter; the LLM step is asynchronous. A
failing LLM never fails the request: the statistical draft comes back with a
``llm_unavailable`` warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import anyio
import anyio.to_thread
import httpx

from glossary.extract.documents import UploadedDocument, read_documents
from glossary.extract.keyphrases import Keyphrase, KeyphraseParams, extract_keyphrases
from glossary.extract.llm import (
    FilterOutcome,
    TermCandidate,
    TermFilterParams,
    filter_and_translate,
)
from glossary.extract.model import DocumentText, ExtractionLimits
from glossary.extract.schemas import (
    DraftEntry,
    DraftWarning,
    GlossaryDraft,
    LlmStatus,
    LlmSummary,
    SourceFile,
    SourceStats,
    TermEvidence,
    TermOccurrence,
)
from glossary.validation import normalise_text
from kernel.errors import ErrorCode

DEFAULT_MAX_TERMS = 50
MAX_TERMS = 500
# The LLM drops many candidates: it sees this many per term asked for.
LLM_CANDIDATES_PER_TERM = 2
_LLM_DOWN = str(ErrorCode.LLM_UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class DraftRequest:
    uploads: tuple[UploadedDocument, ...]
    languages: tuple[str, ...] = ()
    max_terms: int = DEFAULT_MAX_TERMS
    name: str | None = None
    use_llm: bool = False
    # The endpoint; None when none is configured (then use_llm only adds a warning).
    llm: TermFilterParams | None = None


@dataclass(frozen=True, slots=True)
class Candidates:
    documents: list[DocumentText]
    keyphrases: list[Keyphrase]


def find_candidates(
    uploads: Sequence[UploadedDocument], limits: ExtractionLimits, count: int
) -> Candidates:
    """Read the files and rank candidate terms (blocking; raises RasstError for bad files)."""
    documents = read_documents(uploads, limits)
    keyphrases = extract_keyphrases(documents, KeyphraseParams(max_terms=count))
    return Candidates(documents, keyphrases)


async def draft_glossary(
    request: DraftRequest,
    limits: ExtractionLimits,
    *,
    limiter: anyio.CapacityLimiter | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> GlossaryDraft:
    llm = request.llm if request.use_llm else None
    pool = request.max_terms * (LLM_CANDIDATES_PER_TERM if llm else 1)
    candidates = await anyio.to_thread.run_sync(
        partial(find_candidates, request.uploads, limits, pool), limiter=limiter
    )
    warnings = [
        DraftWarning(code=str(n.code), message=n.message, file=n.file)
        for document in candidates.documents
        for n in document.warnings
    ]
    outcome: FilterOutcome | None = None
    if request.use_llm and llm is None:
        warnings.append(
            DraftWarning(
                code=_LLM_DOWN,
                message="no LLM is configured (RASST_LLM_URL): candidates are unfiltered and "
                "translations empty",
            )
        )
    elif llm is not None and candidates.keyphrases:
        outcome = await filter_and_translate(
            [TermCandidate(k.term, k.first.context, k.expansion) for k in candidates.keyphrases],
            request.languages,
            llm,
            transport=transport,
        )
        warnings.extend(_llm_warnings(outcome, len(candidates.keyphrases)))
    entries, summary = _entries(candidates.keyphrases, outcome, request)
    if not candidates.keyphrases:
        warnings.append(
            DraftWarning(
                code=str(ErrorCode.VALIDATION_FAILED),
                message="no candidate terms found in the text",
            )
        )
    return GlossaryDraft(
        name=request.name or _stem(request.uploads[0].filename),
        target_languages=list(request.languages),
        entries=entries,
        sources=_sources(candidates.documents, request.uploads),
        llm=summary,
        warnings=warnings,
    )


def _entries(
    keyphrases: Sequence[Keyphrase], outcome: FilterOutcome | None, request: DraftRequest
) -> tuple[list[DraftEntry], LlmSummary]:
    summary = LlmSummary(used=outcome is not None)
    if outcome is not None:
        summary.model = outcome.model
        summary.candidates = len(keyphrases)
        summary.batches = outcome.batches
        summary.failed_batches = outcome.failed_batches
    entries: list[DraftEntry] = []
    seen: set[str] = set()
    for keyphrase in keyphrases:
        translations: dict[str, str] = {}
        status: LlmStatus = "off"
        if outcome is not None:
            verdict = outcome.verdicts.get(keyphrase.term)
            if verdict is None:
                status = "unchecked"
                summary.unchecked += 1
            elif not verdict.keep:
                summary.dropped += 1
                continue
            else:
                status = "kept"
                summary.kept += 1
                translations = dict(verdict.translations)
        source = normalise_text(keyphrase.term)
        if len(entries) >= request.max_terms or source.casefold() in seen:
            continue
        seen.add(source.casefold())
        entries.append(
            DraftEntry(
                source=source,
                targets={
                    lang: [translations[lang]] if lang in translations else []
                    for lang in request.languages
                },
                note=keyphrase.expansion,
                score=keyphrase.score,
                evidence=TermEvidence(
                    kind=keyphrase.kind,
                    count=keyphrase.count,
                    first=TermOccurrence(
                        file=keyphrase.first.file,
                        page=keyphrase.first.page,
                        offset=keyphrase.first.offset,
                        context=keyphrase.first.context,
                    ),
                    expansion=keyphrase.expansion,
                    llm=status,
                ),
            )
        )
    return entries, summary


def _llm_warnings(outcome: FilterOutcome, candidates: int) -> list[DraftWarning]:
    if not outcome.failed_batches:
        return []
    reasons = "; ".join(outcome.failures)
    if outcome.failed_batches == outcome.batches:
        message = (
            f"the LLM step failed ({reasons}): this is the statistical draft, unfiltered, "
            "with empty translations"
        )
    else:
        judged = len(outcome.verdicts)
        message = (
            f"the LLM failed on {outcome.failed_batches} of {outcome.batches} batches "
            f"({reasons}): {candidates - judged} candidates are unfiltered and untranslated"
        )
    return [DraftWarning(code=_LLM_DOWN, message=message)]


def _sources(documents: Sequence[DocumentText], uploads: Sequence[UploadedDocument]) -> SourceStats:
    files = [
        SourceFile(
            filename=document.filename,
            format=document.format,
            bytes=len(upload.data),
            pages=document.pages,
            characters=document.characters,
        )
        for document, upload in zip(documents, uploads, strict=True)
    ]
    return SourceStats(
        files=files,
        pages=sum(f.pages or 0 for f in files),
        characters=sum(f.characters for f in files),
    )


def _stem(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return normalise_text(stem)[:200] or "glossary"
