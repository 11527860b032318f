"""Bytes to text: encoding detection for the encodings glossary tools write.

Only UTF-8 (with or without BOM) and UTF-16/32 are accepted. Guessing legacy
code pages silently corrupts terms, so a file that is none of these is refused
with the line of the first bad byte.
"""

from __future__ import annotations

import codecs

from glossary.report import ImportReport
from glossary.validation import report_error
from kernel.errors import ErrorCode

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def sniff_encoding(data: bytes) -> str:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    head = data[:4096]
    if len(head) >= 4:
        # BOM-less UTF-16 of mostly-ASCII text has a NUL in every other byte.
        even_nuls = head[0::2].count(0)
        odd_nuls = head[1::2].count(0)
        half = len(head) // 2
        if odd_nuls > half * 0.3 and even_nuls == 0:
            return "utf-16-le"
        if even_nuls > half * 0.3 and odd_nuls == 0:
            return "utf-16-be"
    return "utf-8"


def decode(data: bytes, report: ImportReport) -> str:
    encoding = sniff_encoding(data)
    report.encoding = encoding
    if encoding == "utf-8" and b"\x00" in data:
        # Text in UTF-8 never contains NUL; executables, images and archives do.
        report.skip(
            "NUL bytes: this looks like a binary file",
            line=data[: data.index(b"\x00")].count(b"\n") + 1,
        )
        raise report_error(
            ErrorCode.UNSUPPORTED_FORMAT,
            "the file is binary, not a text glossary (CSV, TSV, JSON, TBX or TMX)",
            report,
        )
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        report.skip(f"invalid {encoding} byte at offset {exc.start}", line=line)
        raise report_error(
            ErrorCode.VALIDATION_FAILED,
            f"the file is not valid UTF-8 or UTF-16 (first bad byte on line {line}); "
            "save it as UTF-8",
            report,
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        report.skip("NUL characters: this looks like a binary file", line=line)
        raise report_error(
            ErrorCode.UNSUPPORTED_FORMAT,
            "the file is binary, not a text glossary (CSV, TSV, JSON, TBX or TMX)",
            report,
        )
    return text
