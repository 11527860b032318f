"""Bytes of a text document (plain text, Markdown, HTML) to a string.

UTF-8 (with or without BOM) and UTF-16/32 with a BOM are read, as for glossary
uploads; an HTML page may also declare another charset in a ``<meta>`` tag.
Binary data sent under a text name is refused as an unsupported format.
"""

from __future__ import annotations

import codecs
import re

from glossary.extract.model import document_error
from glossary.formats.text import sniff_encoding
from kernel.errors import ErrorCode

# Share of C0 control bytes (other than tab, line feed, form feed, carriage return)
# above which a file is binary, not text.
_BINARY_CONTROL_SHARE = 0.05
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def decode_text(data: bytes, filename: str | None, *, html: bool = False) -> str:
    encoding = sniff_encoding(data)
    if encoding == "utf-8":
        _refuse_binary(data, filename)
        if html:
            encoding = _declared_charset(data) or encoding
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise document_error(
            ErrorCode.VALIDATION_FAILED,
            f"{filename or 'the file'} is not valid {encoding} text (first bad byte on line "
            f"{line}); save it as UTF-8",
            filename=filename,
            reason="bad_encoding",
            line=line,
        ) from None
    if "\x00" in text:
        raise _binary(filename)
    return text.removeprefix("\ufeff")


def _refuse_binary(data: bytes, filename: str | None) -> None:
    head = data[:65536]
    if b"\x00" in head:
        raise _binary(filename)
    controls = sum(head.count(b) for b in _CONTROL_BYTES)
    if head and controls / len(head) > _BINARY_CONTROL_SHARE:
        raise _binary(filename)


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    if not match:
        return None
    try:
        return codecs.lookup(match.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None


def _binary(filename: str | None) -> Exception:
    return document_error(
        ErrorCode.UNSUPPORTED_FORMAT,
        f"{filename or 'the file'} is binary data, not text; upload a PDF, PPTX, HTML, "
        "Markdown or plain-text document",
        filename=filename,
        reason="binary",
    )
