"""Types shared by the document readers and the keyphrase extractor.

A reader turns one uploaded file into a :class:`DocumentText`: text blocks in
reading order, each marked as title, heading or body and with the page (PDF)
or slide (PPTX) it came from. Offsets reported to users are character offsets
into :attr:`DocumentText.text`, the blocks joined by blank lines.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kernel.errors import ErrorCode, RasstError

MiB = 1024 * 1024
BLOCK_SEPARATOR = "\n\n"


class DocumentFormat(StrEnum):
    PDF = "pdf"
    PPTX = "pptx"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"


class BlockKind(StrEnum):
    TITLE = "title"
    HEADING = "heading"
    BODY = "body"


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    """What one extraction request may cost; the defaults fit a long paper plus its slides."""

    # Per file; the gateway passes RASST_GLOSSARY_MAX_FILE_BYTES.
    max_file_bytes: int = 10 * MiB
    max_files: int = 5
    # A PDF with more pages (a PPTX with more slides) is refused before any page is read.
    max_pages: int = 300
    # Text kept over all files of a request; the rest is cut off with a warning.
    max_text_chars: int = 1_000_000
    # Wall-clock budget for reading all files. Readers check it between pages and
    # slides (a running pypdf call cannot be interrupted); see docs/glossary-drafts.md.
    time_budget_seconds: float = 60.0
    # PPTX (a ZIP archive): entries, bytes of the central directory, bytes decompressed
    # from one entry and from all entries read, and the largest compression ratio
    # accepted for an entry of more than ``zip_ratio_floor_bytes``.
    max_zip_entries: int = 10_000
    max_zip_directory_bytes: int = 4 * MiB
    max_zip_member_bytes: int = 32 * MiB
    max_zip_total_bytes: int = 128 * MiB
    max_zip_ratio: float = 100.0
    zip_ratio_floor_bytes: int = 1 * MiB


@dataclass(frozen=True, slots=True)
class Notice:
    """A warning about a file or the draft: something was left out, but the request goes on."""

    code: ErrorCode
    message: str
    file: str | None = None


@dataclass(frozen=True, slots=True)
class TextBlock:
    text: str
    kind: BlockKind = BlockKind.BODY
    # 1-based page (PDF) or slide (PPTX); None for formats without pages.
    page: int | None = None


@dataclass(frozen=True, slots=True)
class DocumentText:
    filename: str
    format: DocumentFormat
    blocks: tuple[TextBlock, ...]
    # Pages of a PDF, slides of a PPTX; None for the other formats.
    pages: int | None = None
    warnings: tuple[Notice, ...] = ()
    # Where each block starts in ``text``.
    offsets: tuple[int, ...] = field(init=False)
    text: str = field(init=False)

    def __post_init__(self) -> None:
        offsets: list[int] = []
        position = 0
        for block in self.blocks:
            offsets.append(position)
            position += len(block.text) + len(BLOCK_SEPARATOR)
        object.__setattr__(self, "offsets", tuple(offsets))
        object.__setattr__(self, "text", BLOCK_SEPARATOR.join(b.text for b in self.blocks))

    @property
    def characters(self) -> int:
        return len(self.text)


class Deadline:
    """A wall-clock budget that readers check between units of work (pages, slides)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def expired(self) -> bool:
        return time.monotonic() >= self._end


def document_error(
    code: ErrorCode, message: str, *, filename: str | None, reason: str, **extra: Any
) -> RasstError:
    """A refused file: the stable ``code`` plus ``detail.reason`` (``encrypted_pdf``, ...)."""
    return RasstError(code, message, detail={"file": filename, "reason": reason, **extra})


def non_empty(blocks: Sequence[TextBlock]) -> tuple[TextBlock, ...]:
    return tuple(b for b in blocks if b.text.strip())
