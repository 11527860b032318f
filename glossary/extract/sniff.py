"""Which reader a file needs: decided by its first bytes, then by its name.

Magic bytes win: a PDF named ``talk.txt`` is read as a PDF. A name that
promises a binary format (``.pdf``, ``.pptx``) whose bytes are something else
is refused rather than read as text.
"""

from __future__ import annotations

from glossary.extract.model import DocumentFormat, document_error
from glossary.formats.text import sniff_encoding
from kernel.errors import ErrorCode

# The PDF header may follow up to 1024 bytes of junk (ISO 32000-1, 7.5.2, note).
_PDF_MAGIC = b"%PDF-"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_OTHER_BINARIES = {
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "a legacy Office file (.ppt/.doc); save it as .pptx or PDF",
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "gzip data",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
    b"Rar!": "a RAR archive",
    b"\x7fELF": "an executable",
    b"MZ": "an executable",
}
_BINARY_NAMES = {"pdf": DocumentFormat.PDF, "pptx": DocumentFormat.PPTX}
_UNSUPPORTED_NAMES = {
    "ppt": "legacy PowerPoint (.ppt); save it as .pptx or PDF",
    "doc": "Word (.doc)",
    "docx": "Word (.docx); save it as PDF",
    "odt": "OpenDocument text; save it as PDF",
    "odp": "OpenDocument slides; save them as .pptx or PDF",
    "key": "Keynote; export it as .pptx or PDF",
    "xlsx": "Excel",
    "xls": "Excel",
}
_HTML_NAMES = {"html", "htm", "xhtml"}
_MARKDOWN_NAMES = {"md", "markdown", "mdown", "mkd"}
_HTML_STARTS = ("<!doctype html", "<html", "<head", "<body", "<?xml")


def detect_document_format(data: bytes, filename: str | None) -> DocumentFormat:
    extension = _extension(filename)
    if _PDF_MAGIC in data[:1024]:
        return DocumentFormat.PDF
    if data.startswith(_ZIP_MAGICS):
        return DocumentFormat.PPTX  # the slide reader checks that the archive is a presentation
    for magic, what in _OTHER_BINARIES.items():
        if data.startswith(magic):
            raise _unsupported(filename, f"{filename or 'the file'} is {what}", "binary")
    if extension in _BINARY_NAMES:
        expected = "a PDF" if extension == "pdf" else "a PowerPoint .pptx file (a ZIP archive)"
        raise _unsupported(
            filename,
            f"{filename} is named .{extension} but is not {expected}",
            "content_does_not_match_name",
        )
    if extension in _UNSUPPORTED_NAMES:
        raise _unsupported(
            filename, f"{_UNSUPPORTED_NAMES[extension]} is not supported", "unsupported_type"
        )
    if extension in _HTML_NAMES:
        return DocumentFormat.HTML
    if extension in _MARKDOWN_NAMES:
        return DocumentFormat.MARKDOWN
    head = data[:4096].decode(sniff_encoding(data), errors="ignore").lstrip().lower()
    if head.startswith(_HTML_STARTS) and "<html" in head:
        return DocumentFormat.HTML
    return DocumentFormat.TEXT


def _extension(filename: str | None) -> str:
    if not filename:
        return ""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""


def _unsupported(filename: str | None, message: str, reason: str) -> Exception:
    return document_error(
        ErrorCode.UNSUPPORTED_FORMAT,
        f"{message}: upload a PDF, PPTX, HTML, Markdown or plain-text document",
        filename=filename,
        reason=reason,
    )
