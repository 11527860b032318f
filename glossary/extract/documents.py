"""One entry point for every document format: bytes and a file name to :class:`DocumentText`.

Checks what all formats share (size, emptiness, the request's text budget),
picks the reader from the content (:mod:`glossary.extract.sniff`) and
normalises the text (NFKC: PDF ligatures such as "ﬁ" become "fi").
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from glossary.extract.decoding import decode_text
from glossary.extract.htmltext import html_blocks
from glossary.extract.model import (
    BLOCK_SEPARATOR,
    Deadline,
    DocumentFormat,
    DocumentText,
    ExtractionLimits,
    Notice,
    TextBlock,
    document_error,
    non_empty,
)
from glossary.extract.pdftext import pdf_document
from glossary.extract.plaintext import markdown_blocks, text_blocks
from glossary.extract.slides import pptx_document
from glossary.extract.sniff import detect_document_format
from kernel.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class UploadedDocument:
    filename: str
    data: bytes


def read_documents(
    uploads: Sequence[UploadedDocument], limits: ExtractionLimits
) -> list[DocumentText]:
    """Read every upload within one deadline and one text budget; raises RasstError."""
    if not uploads:
        raise document_error(
            ErrorCode.VALIDATION_FAILED, "no file uploaded", filename=None, reason="no_file"
        )
    if len(uploads) > limits.max_files:
        raise document_error(
            ErrorCode.LIMIT_EXCEEDED,
            f"{len(uploads)} files; at most {limits.max_files} per request",
            filename=None,
            reason="too_many_files",
        )
    deadline = Deadline(limits.time_budget_seconds)
    budget = limits.max_text_chars
    documents: list[DocumentText] = []
    for upload in uploads:
        document = read_document(upload.data, upload.filename, limits, deadline, max_chars=budget)
        budget -= document.characters
        documents.append(document)
    return documents


def read_document(
    data: bytes,
    filename: str,
    limits: ExtractionLimits,
    deadline: Deadline | None = None,
    *,
    max_chars: int | None = None,
) -> DocumentText:
    deadline = deadline or Deadline(limits.time_budget_seconds)
    max_chars = limits.max_text_chars if max_chars is None else max_chars
    if len(data) > limits.max_file_bytes:
        raise document_error(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"{filename} is larger than the {limits.max_file_bytes}-byte limit",
            filename=filename,
            reason="file_too_large",
        )
    if not data.strip():
        raise document_error(
            ErrorCode.VALIDATION_FAILED, f"{filename} is empty", filename=filename, reason="empty"
        )
    fmt = detect_document_format(data, filename)
    if fmt is DocumentFormat.PDF:
        document = pdf_document(data, filename, limits, deadline, max_chars)
    elif fmt is DocumentFormat.PPTX:
        document = pptx_document(data, filename, limits, deadline)
    else:
        text = decode_text(data, filename, html=fmt is DocumentFormat.HTML)
        if fmt is DocumentFormat.HTML:
            blocks = html_blocks(text)
        elif fmt is DocumentFormat.MARKDOWN:
            blocks = markdown_blocks(text)
        else:
            blocks = text_blocks(text)
        document = DocumentText(filename, fmt, blocks)
    return _finish(document, max_chars)


def _finish(document: DocumentText, max_chars: int) -> DocumentText:
    blocks: list[TextBlock] = []
    warnings = list(document.warnings)
    used = 0
    for block in document.blocks:
        text = unicodedata.normalize("NFKC", block.text)
        if used + len(text) > max_chars:
            text = text[: max(0, max_chars - used)]
            warnings.append(
                Notice(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"text cut off after {used + len(text)} characters (the limit on text "
                    "read per request)",
                    document.filename,
                )
            )
            blocks.append(TextBlock(text, block.kind, block.page))
            break
        used += len(text) + len(BLOCK_SEPARATOR)
        blocks.append(TextBlock(text, block.kind, block.page))
    kept = non_empty(blocks)
    if not kept and not warnings:
        raise document_error(
            ErrorCode.VALIDATION_FAILED,
            f"{document.filename} contains no text"
            + (" (a scanned PDF needs OCR first)" if document.format is DocumentFormat.PDF else ""),
            filename=document.filename,
            reason="no_text",
        )
    return DocumentText(document.filename, document.format, kept, document.pages, tuple(warnings))
