"""JSON glossaries: our own schema and the RASST reference format.

Own schema (what ``export?format=json`` writes)::

    {"format": "rasst-glossary", "name": "...", "source_language": "en",
     "entries": [{"source": "BLEU score", "targets": {"de": ["BLEU-Wert"]},
                  "note": null, "priority": 0}]}

A bare list of such entries is accepted too, and a translation may be a string
instead of a list. The RASST reference format (the released retriever's glossary
files) is a dict keyed by normalised term, or a list, of
``{"term": "...", "target_translations": {"zh": "...", "de": "..."}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from glossary.formats.base import ExportedFile, ParsedGlossary, ParseOptions
from glossary.formats.text import decode
from glossary.languages import canonical_language
from glossary.model import GlossarySnapshot
from glossary.report import ImportReport
from glossary.validation import EntryCollector, report_error, storable
from kernel.errors import ErrorCode

OWN_FORMAT_TAG = "rasst-glossary"


def parse_json(data: bytes, options: ParseOptions, report: ImportReport) -> ParsedGlossary:
    text = decode(data, report)
    report.format = "json"
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        report.skip(f"invalid JSON: {exc.msg}", line=exc.lineno)
        raise report_error(
            ErrorCode.VALIDATION_FAILED, f"invalid JSON on line {exc.lineno}: {exc.msg}", report
        ) from None
    except RecursionError:
        raise report_error(ErrorCode.VALIDATION_FAILED, "JSON nested too deeply", report) from None
    except ValueError as exc:
        # Not a JSONDecodeError: an integer literal longer than Python converts (4300 digits).
        report.skip(f"invalid JSON: {exc}")
        raise report_error(
            ErrorCode.VALIDATION_FAILED, f"the JSON cannot be read: {exc}", report
        ) from None

    name: str | None = None
    source = canonical_language(options.source_language or "") if options.source_language else None
    items: Iterable[tuple[str, str | None, Any]]
    if isinstance(document, dict) and isinstance(document.get("entries"), list):
        if isinstance(document.get("name"), str) and storable(document["name"]):
            name = document["name"]
        declared = document.get("source_language")
        if source is None and isinstance(declared, str):
            source = canonical_language(declared)
            if source is None:
                report.warnings.append(f"source_language {declared!r} is not a language code")
        items = ((f"entries[{i}]", None, e) for i, e in enumerate(document["entries"]))
    elif isinstance(document, dict):
        items = ((json.dumps(k, ensure_ascii=False), k, v) for k, v in document.items())
    elif isinstance(document, list):
        items = ((f"[{i}]", None, e) for i, e in enumerate(document))
    else:
        raise report_error(
            ErrorCode.VALIDATION_FAILED,
            "JSON glossary must be an object with 'entries', a list of entries, or a dict "
            "keyed by term with 'target_translations'",
            report,
        )

    collector = EntryCollector(report, options.limits)
    rasst = False
    for where, key, item in items:
        if not isinstance(item, dict):
            report.rows_read += 1
            report.skip("entry is not a JSON object", item=where)
            continue
        if "target_translations" in item:
            rasst = True
            term = item.get("term", key)
            raw_targets = item.get("target_translations")
            note = item.get("note")
        else:
            term = item.get("source", item.get("term"))
            raw_targets = item.get("targets", {})
            note = item.get("note")
        targets = _targets(raw_targets)
        if (
            targets is None
            or not isinstance(term, str)
            or not (note is None or isinstance(note, str))
        ):
            report.rows_read += 1
            report.skip(
                "expected a string term, an object of translations per language and an "
                "optional string note",
                item=where,
            )
            continue
        bad = [lang for lang, _ in targets if canonical_language(lang) is None]
        if bad:
            report.rows_read += 1
            report.skip(f"not language codes: {', '.join(map(repr, bad))}", item=where)
            continue
        collector.add(
            term,
            [(canonical_language(lang) or lang, text) for lang, text in targets],
            item=where,
            note=note,
            priority=item.get("priority"),
        )
    if rasst:
        report.format = "rasst-json"
    report.source_language = source or "en"
    if source is None:
        report.warnings.append("the file names no source language; assumed 'en'")
    return ParsedGlossary(report.source_language, collector.finish(), report, name=name)


def _targets(raw: Any) -> list[tuple[str, str]] | None:
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return None
    out: list[tuple[str, str]] = []
    for lang, value in raw.items():
        values = [value] if isinstance(value, str) else value
        if value is None:
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return None
        out.extend((lang, v) for v in values)
    return out


def export_json(snapshot: GlossarySnapshot) -> ExportedFile:
    document = {
        "format": OWN_FORMAT_TAG,
        "id": snapshot.id,
        "version": snapshot.version,
        "name": snapshot.name,
        "source_language": snapshot.source_language,
        "entries": [
            {
                "source": e.source,
                "targets": {lang: list(v) for lang, v in e.targets.items()},
                "note": e.note,
                "priority": e.priority,
            }
            for e in snapshot.entries
        ],
    }
    content = json.dumps(document, ensure_ascii=False, indent=1).encode()
    return ExportedFile(content, "application/json", "json")
