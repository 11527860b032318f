"""TMX 1.4: translation units whose variants in the source language are the terms.

The source language is the request's, else the header's ``srclang`` (unless
``*all*``), else the first variant's. Inline codes (bpt, ept, ph, it) are
formatting, not words, and are left out of the term text.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, tostring

from glossary.formats.base import ExportedFile, ParsedGlossary, ParseOptions
from glossary.formats.xmlsafe import (
    XML_LANG,
    children,
    descendants,
    line_of,
    local,
    parse_xml,
    text_of,
)
from glossary.languages import canonical_language, primary_subtag
from glossary.model import GlossarySnapshot
from glossary.report import ImportReport
from glossary.validation import EntryCollector, report_error
from kernel.errors import ErrorCode

_INLINE_CODES = frozenset({"bpt", "ept", "ph", "it", "ut"})
PRIORITY_PROP = "x-rasst-priority"


def parse_tmx(data: bytes, options: ParseOptions, report: ImportReport) -> ParsedGlossary:
    report.format = "tmx"
    root = parse_xml(data, report)
    if local(root.tag) != "tmx":
        raise report_error(
            ErrorCode.UNSUPPORTED_FORMAT, f"not TMX: root <{local(root.tag)}>", report
        )
    header = next(iter(children(root, "header")), None)
    units = descendants(root, "tu")
    source = canonical_language(options.source_language or "")
    if source is None and header is not None:
        source = canonical_language(header.get("srclang", ""))
    if source is None:
        first = next((v for u in units for v in children(u, "tuv")), None)
        source = canonical_language(_lang(first)) if first is not None else None
    if source is None:
        raise report_error(
            ErrorCode.VALIDATION_FAILED, "the TMX file names no source language", report
        )
    report.source_language = source
    collector = EntryCollector(report, options.limits)
    for number, unit in enumerate(units, 1):
        where = unit.get("tuid") or f"tu {number}"
        line = line_of(unit)
        variants: list[tuple[str, str]] = []
        for variant in children(unit, "tuv"):
            lang = canonical_language(_lang(variant))
            seg = next(iter(children(variant, "seg")), None)
            if lang is None or seg is None:
                report.warnings.append(f"line {line_of(variant)}: variant without language or seg")
                continue
            variants.append((lang, text_of(seg, _INLINE_CODES)))
        # en-GB counts as the source of an "en" file only when there is no plain "en".
        source_langs = {lang for lang, _ in variants if lang == source} or {
            lang for lang, _ in variants if primary_subtag(lang) == primary_subtag(source)
        }
        sources = [text for lang, text in variants if lang in source_langs]
        targets = [(lang, text) for lang, text in variants if lang not in source_langs]
        if not sources:
            report.rows_read += 1
            report.skip(f"translation unit has no {source} variant", line=line, item=where)
            continue
        note = "; ".join(text_of(n).strip() for n in children(unit, "note")) or None
        priority = next(
            (text_of(p).strip() for p in children(unit, "prop") if p.get("type") == PRIORITY_PROP),
            None,
        )
        for term in sources:
            collector.add(term, targets, line=line, item=where, note=note, priority=priority)
    return ParsedGlossary(source, collector.finish(), report)


def _lang(variant: Element) -> str:
    # TMX 1.1 spelled it "lang"; 1.4 uses xml:lang.
    return variant.get(XML_LANG) or variant.get("lang") or ""


def export_tmx(snapshot: GlossarySnapshot) -> ExportedFile:
    root = Element("tmx", {"version": "1.4"})
    SubElement(
        root,
        "header",
        {
            "creationtool": "rasst",
            "creationtoolversion": "1",
            "segtype": "phrase",
            "o-tmf": "rasst-glossary",
            "adminlang": "en",
            "srclang": snapshot.source_language,
            "datatype": "plaintext",
        },
    )
    body = SubElement(root, "body")
    for number, entry in enumerate(snapshot.entries, 1):
        unit = SubElement(body, "tu", {"tuid": str(number)})
        if entry.priority:
            SubElement(unit, "prop", {"type": PRIORITY_PROP}).text = str(entry.priority)
        if entry.note:
            SubElement(unit, "note").text = entry.note
        for lang, texts in [(snapshot.source_language, (entry.source,)), *entry.targets.items()]:
            for text in texts:
                SubElement(SubElement(unit, "tuv", {XML_LANG: lang}), "seg").text = text
    content = tostring(root, encoding="utf-8", xml_declaration=True)
    return ExportedFile(content, "application/x-tmx+xml", "tmx")
