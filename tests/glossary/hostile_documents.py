"""Damaged, hostile and unsupported documents for the glossary-draft tests, built on the fly.

Each entry of :func:`hostile_documents` is (file name, bytes, expected code,
expected ``detail.reason``), checked both against the reader
(test_extract_documents.py) and through the running server (test_extract_api.py).
"""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache

from kernel.errors import ErrorCode

_PRESENTATION = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"/>'
)
_SLIDE_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<p:sld xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"><p:cSld><p:spTree>'
    "<p:sp><p:txBody><a:p><a:r><a:t>"
)
_SLIDE_TAIL = "</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"


@dataclass(frozen=True)
class Hostile:
    filename: str
    data: bytes
    code: ErrorCode
    reasons: tuple[str, ...]


def simple_pdf(pages: int = 1, text: str = "Contrastive learning for speech translation.") -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for _ in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def flate_bomb_pdf(megabytes: int = 24) -> bytes:
    """One page whose content stream inflates to ``megabytes`` MiB (pypdf is allowed 16)."""
    text = b"BT /F1 12 Tf 72 712 Td (contrastive learning) Tj ET\n"
    content = zlib.compress(text + b"0 0 m " * (megabytes * 1024 * 1024 // 6), 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> "
        b">> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content)
        + content
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(simple_pdf())))
    # RC4 needs no optional crypto library, so pypdf can check the password.
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pptx_archive(slide_xml: str | bytes, *, extra: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ppt/presentation.xml", _PRESENTATION)
        archive.writestr("ppt/slides/slide1.xml", slide_xml)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def slide(text: str) -> str:
    return _SLIDE_HEAD + text + _SLIDE_TAIL


@cache
def hostile_documents() -> tuple[Hostile, ...]:
    valid_pdf = simple_pdf(pages=3)
    padding = " " * (4 * 1024 * 1024)
    docx = io.BytesIO()
    with zipfile.ZipFile(docx, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    return (
        Hostile(
            "truncated.pdf",
            valid_pdf[: len(valid_pdf) // 3],
            ErrorCode.VALIDATION_FAILED,
            ("malformed_pdf", "no_text"),
        ),
        Hostile(
            "garbage.pdf",
            b"%PDF-1.7\n" + random.Random(7).randbytes(3000),
            ErrorCode.VALIDATION_FAILED,
            ("malformed_pdf", "no_text"),
        ),
        Hostile("bomb.pdf", flate_bomb_pdf(), ErrorCode.LIMIT_EXCEEDED, ("pdf_limits",)),
        Hostile("locked.pdf", encrypted_pdf(), ErrorCode.VALIDATION_FAILED, ("encrypted_pdf",)),
        Hostile(
            "book.pdf",
            simple_pdf(pages=301, text="x"),
            ErrorCode.LIMIT_EXCEEDED,
            ("too_many_pages",),
        ),
        Hostile(
            "bomb.pptx",
            # Declares 33 MiB for one slide (the cap is 32 MiB); 33 KiB on the wire.
            pptx_archive(slide("a" + " " * (33 * 1024 * 1024))),
            ErrorCode.LIMIT_EXCEEDED,
            ("zip_limits",),
        ),
        Hostile(
            "ratio.pptx",
            # 4 MiB of spaces compress about 1000:1 (the limit is 100:1 above 1 MiB).
            pptx_archive(slide("term" + padding)),
            ErrorCode.LIMIT_EXCEEDED,
            ("zip_limits",),
        ),
        Hostile(
            "entities.pptx",
            pptx_archive(
                '<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa">]>' + slide("&a;")
            ),
            ErrorCode.VALIDATION_FAILED,
            ("forbidden_xml",),
        ),
        Hostile(
            "broken.pptx",
            pptx_archive(_SLIDE_HEAD + "unclosed"),
            ErrorCode.VALIDATION_FAILED,
            ("malformed_xml",),
        ),
        Hostile(
            "notazip.pptx",
            b"This is a text file that says it is a presentation.",
            ErrorCode.UNSUPPORTED_FORMAT,
            ("content_does_not_match_name",),
        ),
        Hostile(
            "truncated.pptx",
            pptx_archive(slide("hello"))[:200],
            ErrorCode.VALIDATION_FAILED,
            ("malformed_archive",),
        ),
        Hostile(
            "report.docx", docx.getvalue(), ErrorCode.UNSUPPORTED_FORMAT, ("not_a_presentation",)
        ),
        Hostile(
            "garbage.txt",
            random.Random(3).randbytes(8192),
            ErrorCode.UNSUPPORTED_FORMAT,
            ("binary",),
        ),
        Hostile(
            "latin1.txt",
            "Die Straße und die Größe des Modells.".encode("latin-1"),
            ErrorCode.VALIDATION_FAILED,
            ("bad_encoding",),
        ),
        Hostile(
            "image.png",
            b"\x89PNG\r\n\x1a\n" + bytes(100),
            ErrorCode.UNSUPPORTED_FORMAT,
            ("binary",),
        ),
        Hostile("empty.txt", b"", ErrorCode.VALIDATION_FAILED, ("empty",)),
        Hostile("blank.md", b"  \n\n\t\n", ErrorCode.VALIDATION_FAILED, ("empty",)),
        Hostile(
            "script.html",
            b"<html><body><script>alert('Quantum Flux Capacitor')</script></body></html>",
            ErrorCode.VALIDATION_FAILED,
            ("no_text",),
        ),
    )
