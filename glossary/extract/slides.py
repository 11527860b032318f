"""PowerPoint (.pptx) slides to text blocks, read straight from the package.

A PPTX file is a ZIP archive (read through :class:`SafeZip`) of XML parts
(parsed with defusedxml: no DTDs, no entities). Slides are taken in
presentation order (``ppt/presentation.xml`` → its relationships), each
paragraph (``a:p``, the ``a:t`` runs inside it) becomes a block, title
placeholders become the title (first slide) or headings, and the speaker notes
of each slide follow it. Footers, dates and slide numbers are skipped.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from glossary.extract.model import (
    BlockKind,
    Deadline,
    DocumentFormat,
    DocumentText,
    ExtractionLimits,
    Notice,
    TextBlock,
    document_error,
    non_empty,
)
from glossary.extract.safezip import SafeZip
from kernel.errors import ErrorCode, RasstError

_PRESENTATION = "ppt/presentation.xml"
_NS_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_NS_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_NS_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NS_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_NOTES_TYPE = f"{_NS_R}/notesSlide"
_TITLE_PLACEHOLDERS = frozenset(["title", "ctrTitle"])
_SKIPPED_PLACEHOLDERS = frozenset(["sldNum", "dt", "ftr", "hdr", "sldImg"])
_SLIDE_NAME = re.compile(r"^ppt/slides/slide(\d+)\.xml$")


def pptx_document(
    data: bytes, filename: str, limits: ExtractionLimits, deadline: Deadline
) -> DocumentText:
    archive = SafeZip(data, limits, filename)
    if _PRESENTATION not in archive:
        raise document_error(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"{filename} is a ZIP archive but not a PowerPoint presentation (.pptx)",
            filename=filename,
            reason="not_a_presentation",
        )
    reader = _PartReader(archive, filename)
    slides = reader.slide_order()
    if len(slides) > limits.max_pages:
        raise document_error(
            ErrorCode.LIMIT_EXCEEDED,
            f"{filename} has {len(slides)} slides; the limit is {limits.max_pages}",
            filename=filename,
            reason="too_many_pages",
            pages=len(slides),
            limit=limits.max_pages,
        )
    blocks: list[TextBlock] = []
    warnings: list[Notice] = []
    for number, part in enumerate(slides, start=1):
        if deadline.expired():
            warnings.append(
                Notice(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"stopped after slide {number - 1} of {len(slides)}: the "
                    f"{deadline.seconds:.0f} s reading budget is spent",
                    filename,
                )
            )
            break
        blocks.extend(_paragraphs(reader.xml(part), number, first_slide=number == 1))
        notes = reader.notes_of(part)
        if notes is not None:
            blocks.extend(_paragraphs(reader.xml(notes), number, first_slide=False, notes=True))
    return DocumentText(
        filename, DocumentFormat.PPTX, non_empty(blocks), len(slides), tuple(warnings)
    )


class _PartReader:
    def __init__(self, archive: SafeZip, filename: str) -> None:
        self._archive = archive
        self._filename = filename

    def xml(self, part: str) -> Element:
        data = self._archive.read(part)
        try:
            root: Element = DefusedET.fromstring(data, forbid_dtd=True)
        except DefusedXmlException:
            raise self._error(f"{part} contains a DTD or entities", "forbidden_xml") from None
        except ParseError as exc:
            raise self._error(f"{part} is not well-formed XML ({exc})", "malformed_xml") from None
        return root

    def slide_order(self) -> list[str]:
        """Slide parts in presentation order; by number if the order cannot be read."""
        try:
            targets = self._relationships(_PRESENTATION)
            ids = [
                node.get(f"{{{_NS_R}}}id", "")
                for node in self.xml(_PRESENTATION).iter(f"{{{_NS_P}}}sldId")
            ]
        except RasstError:
            targets, ids = {}, []
        ordered = [targets[i][0] for i in ids if i in targets and targets[i][0] in self._archive]
        if ordered:
            return list(dict.fromkeys(ordered))
        numbered = [
            (int(m.group(1)), name)
            for name in self._archive.names()
            if (m := _SLIDE_NAME.match(name))
        ]
        return [name for _, name in sorted(numbered)]

    def notes_of(self, slide: str) -> str | None:
        for target, kind in self._relationships(slide).values():
            if kind == _NOTES_TYPE and target in self._archive:
                return target
        return None

    def _relationships(self, part: str) -> dict[str, tuple[str, str]]:
        """Relationship id -> (target part, type) of ``part``; empty when it has none."""
        folder, name = posixpath.split(part)
        rels = posixpath.join(folder, "_rels", f"{name}.rels")
        if rels not in self._archive:
            return {}
        out: dict[str, tuple[str, str]] = {}
        for node in self.xml(rels).iter(f"{{{_NS_RELS}}}Relationship"):
            target = node.get("Target", "")
            if node.get("TargetMode") == "External" or not target:
                continue
            if target.startswith("/"):
                path = target.lstrip("/")
            else:
                path = posixpath.normpath(posixpath.join(folder, target))
            out[node.get("Id", "")] = (path, node.get("Type", ""))
        return out

    def _error(self, message: str, reason: str) -> RasstError:
        return document_error(
            ErrorCode.VALIDATION_FAILED,
            f"{self._filename} is damaged: {message}",
            filename=self._filename,
            reason=reason,
        )


def _paragraphs(
    root: Element, slide: int, *, first_slide: bool, notes: bool = False
) -> Iterator[TextBlock]:
    for shape in root.iter():
        if shape.tag not in (f"{{{_NS_P}}}sp", f"{{{_NS_P}}}graphicFrame"):
            continue
        placeholder = _placeholder_type(shape)
        if placeholder in _SKIPPED_PLACEHOLDERS:
            continue
        kind = BlockKind.BODY
        if placeholder in _TITLE_PLACEHOLDERS and not notes:
            kind = BlockKind.TITLE if first_slide else BlockKind.HEADING
        for paragraph in shape.iter(f"{{{_NS_A}}}p"):
            text = " ".join(_paragraph_text(paragraph).split())
            if text:
                yield TextBlock(text, kind, slide)


def _placeholder_type(shape: Element) -> str | None:
    for node in shape.iter(f"{{{_NS_P}}}ph"):
        return node.get("type", "body")
    return None


def _paragraph_text(paragraph: Element) -> str:
    parts: list[str] = []
    for node in paragraph.iter():
        if node.tag == f"{{{_NS_A}}}t":
            parts.append(node.text or "")
        elif node.tag == f"{{{_NS_A}}}br":
            parts.append(" ")
    return "".join(parts)
