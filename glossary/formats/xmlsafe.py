"""Hardened XML parsing for TBX and TMX: no entity expansion, no external resources.

defusedxml refuses entity declarations (billion laughs, quadratic blow-up) and
external entities (XXE) before anything is expanded. Elements keep the line
they started on so import reports can point at the offending concept.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from glossary.formats.text import sniff_encoding
from glossary.report import ImportReport
from glossary.validation import report_error
from kernel.errors import ErrorCode

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_LINE = "{urn:rasst:internal}line"


class _LineTreeBuilder(TreeBuilder):
    def __init__(self) -> None:
        super().__init__()
        self.expat: object | None = None

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        element = super().start(tag, attrs)
        if self.expat is not None:
            element.set(_LINE, str(self.expat.CurrentLineNumber))  # type: ignore[attr-defined]
        return element


def parse_xml(data: bytes, report: ImportReport) -> Element:
    report.encoding = sniff_encoding(data)
    builder = _LineTreeBuilder()
    # A DOCTYPE naming the TBX/TMX DTD is common and harmless; entities are not.
    parser = DefusedET.DefusedXMLParser(
        target=builder, forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    builder.expat = parser.parser
    try:
        parser.feed(data)
        return parser.close()
    except DefusedXmlException as exc:
        report.skip(f"forbidden XML construct: {type(exc).__name__}")
        raise report_error(
            ErrorCode.VALIDATION_FAILED,
            "XML entity declarations and external references are not allowed in glossaries",
            report,
        ) from None
    except ParseError as exc:
        line = exc.position[0] if exc.position else None
        report.skip(f"malformed XML: {exc}", line=line)
        raise report_error(ErrorCode.VALIDATION_FAILED, f"malformed XML: {exc}", report) from None
    except (LookupError, ValueError) as exc:
        # expat reads only UTF-8, UTF-16 and single-byte encodings: an XML declaration
        # naming any other (shift_jis, utf-7) raises ValueError, an unknown name LookupError.
        report.skip(f"unsupported XML encoding: {exc}")
        raise report_error(
            ErrorCode.VALIDATION_FAILED,
            f"the XML declaration names an encoding that cannot be read ({exc}); "
            "save the file as UTF-8",
            report,
        ) from None


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def line_of(element: Element) -> int | None:
    value = element.get(_LINE)
    return int(value) if value else None


def children(element: Element, *names: str) -> list[Element]:
    return [c for c in element if local(c.tag) in names]


def descendants(element: Element, *names: str) -> list[Element]:
    return [c for c in element.iter() if c is not element and local(c.tag) in names]


def text_of(element: Element, skip: frozenset[str] = frozenset()) -> str:
    """The element's text, leaving out the content of inline elements named in ``skip``.

    Iterative, not recursive: nesting is as deep as the uploader likes.
    """
    parts: list[str] = []
    # A stack of elements to open and tails to emit, in document order.
    stack: list[Element | str] = [element]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        parts.append(item.text or "")
        for child in reversed(item):
            stack.append(child.tail or "")
            if local(child.tag) not in skip:
                stack.append(child)
    return "".join(parts)
