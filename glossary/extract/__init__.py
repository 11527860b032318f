"""Glossary drafts from a talk's documents (paper, slides, notes).

Reading (one module per format: :mod:`pdftext`, :mod:`slides`, :mod:`htmltext`,
:mod:`plaintext`, chosen by :mod:`sniff`, bounded by :class:`ExtractionLimits`),
statistical candidate terms (:mod:`keyphrases`, :mod:`acronyms`), the optional
LLM filter and translation (:mod:`llm`) and their assembly into a draft that is
an uploadable glossary (:mod:`service`, :mod:`schemas`). No FastAPI here: the
endpoint lives in :mod:`glossary.router`.
"""

from __future__ import annotations

from glossary.extract.documents import UploadedDocument, read_document, read_documents
from glossary.extract.keyphrases import (
    Keyphrase,
    KeyphraseParams,
    Occurrence,
    TermKind,
    extract_keyphrases,
)
from glossary.extract.llm import (
    FilterOutcome,
    TermCandidate,
    TermFilterParams,
    TermVerdict,
    filter_and_translate,
)
from glossary.extract.model import (
    BlockKind,
    DocumentFormat,
    DocumentText,
    ExtractionLimits,
    Notice,
    TextBlock,
)
from glossary.extract.schemas import DraftEntry, GlossaryDraft
from glossary.extract.service import (
    DEFAULT_MAX_TERMS,
    MAX_TERMS,
    DraftRequest,
    draft_glossary,
    find_candidates,
)

__all__ = [
    "DEFAULT_MAX_TERMS",
    "MAX_TERMS",
    "BlockKind",
    "DocumentFormat",
    "DocumentText",
    "DraftEntry",
    "DraftRequest",
    "ExtractionLimits",
    "FilterOutcome",
    "GlossaryDraft",
    "Keyphrase",
    "KeyphraseParams",
    "Notice",
    "Occurrence",
    "TermCandidate",
    "TermFilterParams",
    "TermKind",
    "TermVerdict",
    "TextBlock",
    "UploadedDocument",
    "draft_glossary",
    "extract_keyphrases",
    "filter_and_translate",
    "find_candidates",
    "read_document",
    "read_documents",
]
