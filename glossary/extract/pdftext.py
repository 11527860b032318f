"""PDF to text blocks with pypdf (pure Python), one block per page.

What bounds the work on a hostile PDF (a running pypdf call cannot be
interrupted from outside, so the limits are checked before and between calls):

- the file size (the upload limit) and the page count (``max_pages``), checked
  before any page is parsed;
- pypdf's own limits, tightened here where the installed pypdf can
  (``apply_configuration``, pypdf >= 6.18): at most 16 MiB decoded per stream,
  a parsing budget per content stream, a bounded number of form XObjects per
  page, and no external ``jbig2dec`` process;
- the reading deadline (``time_budget_seconds``), checked between pages: the
  text read so far is kept and a warning says where reading stopped;
- the text budget (``max_text_chars``): reading stops once it is reached.

Encrypted PDFs are read when they open with the empty password (owner-only
protection, common for "no copying" papers) and refused otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
from collections.abc import Sequence
from typing import Any

import pypdf
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

from glossary.extract.model import (
    BlockKind,
    Deadline,
    DocumentFormat,
    DocumentText,
    ExtractionLimits,
    MiB,
    Notice,
    TextBlock,
    document_error,
    non_empty,
)
from kernel.errors import ErrorCode, RasstError

_PYPDF_LIMITS: dict[str, Any] = {
    "maximum_declared_stream_length": 16 * MiB,
    "array_based_stream_maximum_output_length": 16 * MiB,
    "zlib_maximum_output_length": 16 * MiB,
    "lzw_maximum_output_length": 16 * MiB,
    "run_length_maximum_output_length": 16 * MiB,
    "brotli_maximum_output_length": 16 * MiB,
    "image_maximum_buffer_size": 16 * MiB,
    "stream_parsing_work_maximum_count": 1_000_000,
    "xform_maximum_invocations_per_extraction": 1_000,
    "jbig2dec_binary": None,
}
_TITLE_MAX_CHARS = 200
# Titles that PDF producers write instead of the document's title.
_JUNK_TITLE = re.compile(r"^(microsoft (word|powerpoint)|untitled)|\.(docx?|pptx?|tex|pdf)$", re.I)
# A word broken at the end of a line: "lan-\nguage".
_LINE_BREAK_HYPHEN = re.compile(r"(\w+)-\n(\w+)")
_WORD = re.compile(r"\w+")


def pdf_document(
    data: bytes, filename: str, limits: ExtractionLimits, deadline: Deadline, max_chars: int
) -> DocumentText:
    with _pypdf_limits():
        return _read(data, filename, limits, deadline, max_chars)


def _read(
    data: bytes, filename: str, limits: ExtractionLimits, deadline: Deadline, max_chars: int
) -> DocumentText:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise _encrypted(filename)
        page_count = len(reader.pages)
    except RasstError:
        raise
    except (DependencyError, FileNotDecryptedError, NotImplementedError):
        # AES without the optional crypto library, or an unknown security handler.
        raise _encrypted(filename) from None
    except LimitReachedError as exc:
        raise _limits(filename, str(exc)) from None
    except Exception as exc:  # pypdf raises many exception types on damaged files
        raise _damaged(filename, exc) from None
    if page_count > limits.max_pages:
        raise document_error(
            ErrorCode.LIMIT_EXCEEDED,
            f"{filename} has {page_count} pages; the limit is {limits.max_pages}",
            filename=filename,
            reason="too_many_pages",
            pages=page_count,
            limit=limits.max_pages,
        )
    if page_count == 0:
        raise _damaged(filename, ValueError("no pages"))

    pages: list[str] = []
    warnings: list[Notice] = []
    failed = 0
    over_limits: LimitReachedError | None = None
    characters = 0
    for index in range(page_count):
        if deadline.expired():
            warnings.append(
                Notice(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"stopped after page {index} of {page_count}: the "
                    f"{deadline.seconds:.0f} s reading budget is spent",
                    filename,
                )
            )
            break
        if characters > max_chars:
            break
        try:
            text = reader.pages[index].extract_text() or ""
        except LimitReachedError as exc:  # a decompression bomb, a huge content stream
            failed += 1
            over_limits = exc
            text = ""
        except Exception:  # one damaged page must not lose the others
            failed += 1
            text = ""
        pages.append(text)
        characters += len(text)
    if failed:
        if failed == len(pages):
            if over_limits is not None:
                raise _limits(filename, str(over_limits))
            raise _damaged(filename, ValueError("no page could be read"))
        warnings.append(
            Notice(
                ErrorCode.VALIDATION_FAILED,
                f"{failed} of {page_count} pages could not be read",
                filename,
            )
        )
    return DocumentText(
        filename,
        DocumentFormat.PDF,
        _blocks(_dehyphenate(pages), _metadata_title(reader)),
        page_count,
        tuple(warnings),
    )


def _blocks(pages: Sequence[str], title: str | None) -> tuple[TextBlock, ...]:
    blocks = [
        TextBlock(text.strip(), BlockKind.BODY, number) for number, text in enumerate(pages, 1)
    ]
    if title:
        blocks.insert(0, TextBlock(title, BlockKind.TITLE, 1))
    elif blocks:
        # Without metadata, the first line of the first page is most likely the title.
        first, _, rest = blocks[0].text.partition("\n")
        if first.strip() and len(first) <= _TITLE_MAX_CHARS:
            blocks[0] = TextBlock(rest.strip(), BlockKind.BODY, 1)
            blocks.insert(0, TextBlock(first.strip(), BlockKind.TITLE, 1))
    return non_empty(blocks)


def _dehyphenate(pages: Sequence[str]) -> list[str]:
    """Join words split at line ends when the joined word occurs elsewhere in the document."""
    vocabulary = {w.lower() for page in pages for w in _WORD.findall(page)}

    def join(match: re.Match[str]) -> str:
        head, tail = match.group(1), match.group(2)
        if (head + tail).lower() in vocabulary:
            return head + tail
        return f"{head}-{tail}"

    return [_LINE_BREAK_HYPHEN.sub(join, page) for page in pages]


def _metadata_title(reader: PdfReader) -> str | None:
    try:
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except Exception:  # a damaged info dictionary only loses the title
        return None
    if not isinstance(title, str):
        return None
    title = " ".join(title.split())
    if not title or len(title) > _TITLE_MAX_CHARS or _JUNK_TITLE.search(title):
        return None
    return title


def _pypdf_limits() -> contextlib.AbstractContextManager[object]:
    """pypdf's limits, tightened for this thread (its configuration is a context variable)."""
    apply = getattr(pypdf, "apply_configuration", None)
    configuration = getattr(pypdf, "Configuration", None)
    if apply is None or configuration is None:  # pypdf < 6.18: its built-in defaults apply
        return contextlib.nullcontext()
    known = {f.name for f in dataclasses.fields(configuration)}
    context: contextlib.AbstractContextManager[object] = apply(
        **{name: value for name, value in _PYPDF_LIMITS.items() if name in known}
    )
    return context


def _encrypted(filename: str) -> RasstError:
    return document_error(
        ErrorCode.VALIDATION_FAILED,
        f"{filename} is encrypted and needs a password; upload an unprotected copy",
        filename=filename,
        reason="encrypted_pdf",
    )


def _limits(filename: str, message: str) -> RasstError:
    return document_error(
        ErrorCode.LIMIT_EXCEEDED,
        f"{filename} exceeds the PDF parsing limits ({message})",
        filename=filename,
        reason="pdf_limits",
    )


def _damaged(filename: str, exc: Exception) -> RasstError:
    return document_error(
        ErrorCode.VALIDATION_FAILED,
        f"{filename} is not a readable PDF ({type(exc).__name__}: {str(exc)[:200]})",
        filename=filename,
        reason="malformed_pdf",
    )
