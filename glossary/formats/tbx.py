"""TBX-Basic (ISO 30042): TBX v3 ``conceptEntry/langSec/termSec`` and TBX v2 (``martif``)
``termEntry/langSet/tig``.

TBX is concept-oriented and has no direction: every term in the source language
becomes an entry whose translations are the concept's terms in the other
languages. Deprecated terms (``administrativeStatus`` = deprecatedTerm-admn-sts)
are not offered as translations; preferred ones come first.
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
from glossary.validation import EntryCollector, report_error, storable
from kernel.errors import ErrorCode

TBX_NS = "urn:iso:std:iso:30042:ed-2"


def parse_tbx(data: bytes, options: ParseOptions, report: ImportReport) -> ParsedGlossary:
    report.format = "tbx"
    root = parse_xml(data, report)
    if local(root.tag) not in ("tbx", "martif"):
        raise report_error(
            ErrorCode.UNSUPPORTED_FORMAT, f"not TBX: root <{local(root.tag)}>", report
        )
    concepts = descendants(root, "conceptEntry", "termEntry")
    source = _source_language(root, concepts, options)
    if source is None:
        raise report_error(ErrorCode.VALIDATION_FAILED, "the TBX file names no languages", report)
    report.source_language = source
    collector = EntryCollector(report, options.limits)
    synonyms = 0
    for number, concept in enumerate(concepts, 1):
        where = concept.get("id") or f"concept {number}"
        line = line_of(concept)
        note = _note(concept)
        by_lang: dict[str, list[str]] = {}
        for section in children(concept, "langSec", "langSet"):
            lang = canonical_language(section.get(XML_LANG) or section.get("lang") or "")
            if lang is None:
                report.warnings.append(
                    f"line {line_of(section)}: language {section.get(XML_LANG)!r} not recognised"
                )
                continue
            by_lang.setdefault(lang, []).extend(_terms(section))
        source_terms = _pick(by_lang, source)
        if not source_terms:
            report.rows_read += 1
            report.skip(f"concept has no {source} term", line=line, item=where)
            continue
        targets = [
            (lang, t)
            for lang, terms in by_lang.items()
            if lang not in source_terms[0]
            for t in terms
        ]
        synonyms += len(source_terms[1]) - 1
        for term in source_terms[1]:
            collector.add(term, targets, line=line, item=where, note=note)
    if synonyms:
        report.warnings.append(
            f"{synonyms} extra source-language synonyms became entries of their own"
        )
    title = next((text_of(t).strip() for t in descendants(root, "title")), None)
    if title and not storable(title):
        title = None
    return ParsedGlossary(source, collector.finish(), report, name=title or None)


def _source_language(root: Element, concepts: list[Element], options: ParseOptions) -> str | None:
    for candidate in (options.source_language, root.get(XML_LANG)):
        lang = canonical_language(candidate or "")
        if lang:
            return lang
    for concept in concepts:
        for section in children(concept, "langSec", "langSet"):
            lang = canonical_language(section.get(XML_LANG) or "")
            if lang:
                return lang
    return None


def _pick(by_lang: dict[str, list[str]], source: str) -> tuple[set[str], list[str]] | None:
    """The languages that count as the source (exact tag, else same primary subtag) and their terms."""
    exact = by_lang.get(source)
    if exact:
        return {source}, exact
    langs = {lang for lang in by_lang if primary_subtag(lang) == primary_subtag(source)}
    terms = [t for lang in langs for t in by_lang[lang]]
    return (langs, terms) if terms else None


def _terms(section: Element) -> list[str]:
    preferred: list[str] = []
    admitted: list[str] = []
    containers = children(section, "termSec", "tig", "ntig") or [section]
    for container in containers:
        term = next(iter(descendants(container, "term")), None)
        if term is None:
            continue
        status = " ".join(
            text_of(n)
            for n in descendants(container, "termNote")
            if n.get("type") == "administrativeStatus"
        )
        if "deprecated" in status or "superseded" in status:
            continue
        (preferred if "preferred" in status else admitted).append(text_of(term))
    return preferred + admitted


def _note(concept: Element) -> str | None:
    parts = [
        text_of(n).strip()
        for n in descendants(concept, "note", "descrip")
        if local(n.tag) == "note" or n.get("type") == "definition"
    ]
    # A note on a translation's termSec describes the concept just as well for a session.
    return "; ".join(dict.fromkeys(p for p in parts if p)) or None


def export_tbx(snapshot: GlossarySnapshot) -> ExportedFile:
    # Unqualified tags plus a literal xmlns: ElementTree's default_namespace option
    # refuses unqualified attributes (id, type), which TBX needs.
    root = Element(
        "tbx",
        {"xmlns": TBX_NS, "type": "TBX-Basic", "style": "dca", XML_LANG: snapshot.source_language},
    )
    header = SubElement(SubElement(root, "tbxHeader"), "fileDesc")
    SubElement(SubElement(header, "titleStmt"), "title").text = snapshot.name
    SubElement(
        SubElement(header, "sourceDesc"), "p"
    ).text = f"RASST glossary {snapshot.id}, version {snapshot.version}"
    body = SubElement(SubElement(root, "text"), "body")
    for number, entry in enumerate(snapshot.entries, 1):
        concept = SubElement(body, "conceptEntry", {"id": f"c{number}"})
        if entry.note:
            SubElement(concept, "note").text = entry.note
        sections = [(snapshot.source_language, (entry.source,)), *entry.targets.items()]
        for lang, terms in sections:
            section = SubElement(concept, "langSec", {XML_LANG: lang})
            for term in terms:
                SubElement(SubElement(section, "termSec"), "term").text = term
    content = tostring(root, encoding="utf-8", xml_declaration=True)
    return ExportedFile(content, "application/x-tbx+xml", "tbx")
