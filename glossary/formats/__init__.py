"""Glossary file formats: detection, parsing into entries with a report, and export.

One module per format family (delimited, JSON, TBX, TMX); this module only
chooses between them.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

from glossary.formats.base import (
    EXPORT_FORMATS,
    IMPORT_FORMATS,
    ExportedFile,
    ParsedGlossary,
    ParseOptions,
)
from glossary.formats.delimited import export_delimited, parse_delimited
from glossary.formats.json_formats import export_json, parse_json
from glossary.formats.tbx import export_tbx, parse_tbx
from glossary.formats.tmx import export_tmx, parse_tmx
from glossary.model import GlossarySnapshot
from glossary.report import ImportReport
from glossary.validation import report_error
from kernel.errors import ErrorCode, RasstError

__all__ = [
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "ExportedFile",
    "ParseOptions",
    "ParsedGlossary",
    "detect_format",
    "export_glossary",
    "parse_glossary",
]

_EXTENSIONS = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "txt": "tsv",
    "json": "json",
    "tbx": "tbx",
    "xml": None,  # TBX or TMX: decided by the root element
    "tmx": "tmx",
}


def detect_format(data: bytes, filename: str | None = None) -> str:
    """csv, tsv, json, tbx or tmx, from the content first and the file name second."""
    head = _text_head(data)
    if head.startswith("<"):
        lowered = head.lower()
        if "<tmx" in lowered:
            return "tmx"
        if "<tbx" in lowered or "<martif" in lowered:
            return "tbx"
        return "xml"
    if head.startswith(("{", "[")):
        return "json"
    ext = filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    return _EXTENSIONS.get(ext) or "csv"


def _text_head(data: bytes) -> str:
    head = data[:4096]
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if head.startswith(bom):
            return head.decode(codec, errors="ignore").lstrip()
    if head[1::2].count(0) > len(head) // 4:
        return head.decode("utf-16-le", errors="ignore").lstrip()
    return head.decode("utf-8", errors="ignore").lstrip()


_PARSERS: dict[str, Callable[[bytes, ParseOptions, ImportReport], ParsedGlossary]] = {
    "csv": parse_delimited,
    "tsv": parse_delimited,
    "json": parse_json,
    "tbx": parse_tbx,
    "tmx": parse_tmx,
}


def parse_glossary(
    data: bytes, options: ParseOptions, *, filename: str | None = None
) -> ParsedGlossary:
    """Parse an uploaded file; raises RasstError with ``detail["report"]`` when nothing is usable."""
    report = ImportReport(format=options.format or "unknown")
    if len(data) > options.limits.max_file_bytes:
        raise report_error(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"the file is larger than {options.limits.max_file_bytes} bytes",
            report,
        )
    if not data.strip():
        raise report_error(ErrorCode.VALIDATION_FAILED, "the file is empty", report)
    fmt = options.format
    if fmt is None:
        fmt = detect_format(data, filename)
        if fmt == "xml":
            raise report_error(ErrorCode.UNSUPPORTED_FORMAT, "XML but neither TBX nor TMX", report)
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise RasstError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"unknown format {fmt!r}; use one of {', '.join(IMPORT_FORMATS)}",
        )
    # A detected csv/tsv is only a guess from the file name: keep sniffing the delimiter.
    return parser(
        data,
        options
        if options.format
        else ParseOptions(
            fmt if fmt not in ("csv", "tsv") else None,
            options.source_language,
            options.target_language,
            options.limits,
        ),
        report,
    )


def export_glossary(snapshot: GlossarySnapshot, fmt: str) -> ExportedFile:
    if fmt == "csv":
        return export_delimited(snapshot, ",")
    if fmt == "tsv":
        return export_delimited(snapshot, "\t")
    if fmt == "json":
        return export_json(snapshot)
    if fmt == "tbx":
        return export_tbx(snapshot)
    if fmt == "tmx":
        return export_tmx(snapshot)
    raise RasstError(
        ErrorCode.UNSUPPORTED_FORMAT,
        f"cannot export as {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}",
    )
