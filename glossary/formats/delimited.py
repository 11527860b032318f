"""CSV and TSV: a header row of language codes (one entry per row), long (lang, source,
target) tables, or headerless two-column ``source,target`` files.

Header conventions follow Amazon Translate and Google (a row of language codes;
the first language column is the source) and DeepL (headerless source,target).
Columns that are not languages are either recognised (note, priority) or
ignored and named in the report, so metadata columns never silently become
translations.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from glossary.formats.base import ExportedFile, ParsedGlossary, ParseOptions
from glossary.formats.text import decode
from glossary.languages import canonical_language
from glossary.model import GlossarySnapshot
from glossary.report import ImportReport
from glossary.validation import EntryCollector, report_error
from kernel.errors import ErrorCode

_NOTE_NAMES = frozenset({"note", "notes", "comment", "comments", "definition", "description"})
_PRIORITY_NAMES = frozenset({"priority", "weight"})
_LANG_NAMES = frozenset({"lang", "language", "target_language", "target_lang", "tgt_lang"})
_TARGET_NAMES = frozenset({"tgt", "target", "translation", "target_term"})
_SOURCE_NAMES = frozenset({"src", "source", "term", "source_term"})
_KNOWN = _NOTE_NAMES | _PRIORITY_NAMES | _LANG_NAMES | _TARGET_NAMES | _SOURCE_NAMES
# What a metadata column name looks like: lower-case ASCII, digits, underscores.
_COLUMN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Language codes that are also usual names of identifier columns ("id", "No."): such a
# column holding only numbers is an identifier. Any other language column is a language,
# whatever it holds, so that an exported glossary of numeric terms reads back the same.
_ID_LIKE_LANGUAGES = frozenset({"id", "no"})
# Cells a spreadsheet would run as formulas; escaped on export, unescaped on import.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SNIFF_CANDIDATES = {"tsv": ("\t",), "csv": (",", ";"), None: ("\t", ",", ";", "|")}


@dataclass(slots=True)
class _Layout:
    source_col: int
    source_language: str
    # (column, language) of each translation column; a language may repeat.
    target_cols: list[tuple[int, str]] = field(default_factory=list)
    note_col: int | None = None
    priority_col: int | None = None
    # Long layout: the language of each row's translation is in this column.
    lang_col: int | None = None
    target_col: int | None = None
    width: int = 0
    has_header: bool = True


def parse_delimited(data: bytes, options: ParseOptions, report: ImportReport) -> ParsedGlossary:
    text = decode(data, report)
    delimiter = _sniff_delimiter(text, _SNIFF_CANDIDATES.get(options.format, (",",)))
    report.delimiter = delimiter
    report.format = "tsv" if delimiter == "\t" else "csv"
    records = list(_records(text, delimiter, report))
    if not records:
        raise report_error(ErrorCode.VALIDATION_FAILED, "the file is empty", report)
    layout = _layout(records, options, report)
    report.source_language = layout.source_language
    collector = EntryCollector(report, options.limits)
    for line, cells in records[1:] if layout.has_header else records:
        if len(cells) > layout.width:
            report.rows_read += 1
            report.skip(f"{len(cells)} columns, expected {layout.width}", line=line)
            continue
        cells = [_unescape(c) for c in cells] + [""] * (layout.width - len(cells))
        if layout.lang_col is not None and layout.target_col is not None:
            lang = canonical_language(cells[layout.lang_col])
            if lang is None:
                report.rows_read += 1
                report.skip(f"{cells[layout.lang_col]!r} is not a language code", line=line)
                continue
            targets = [(lang, cells[layout.target_col])]
        else:
            targets = [(lang, cells[col]) for col, lang in layout.target_cols]
        collector.add(
            cells[layout.source_col],
            targets,
            line=line,
            note=cells[layout.note_col] if layout.note_col is not None else None,
            priority=cells[layout.priority_col] if layout.priority_col is not None else None,
        )
    return ParsedGlossary(layout.source_language, collector.finish(), report)


def _records(text: str, delimiter: str, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        report.skip(f"unreadable {report.format.upper()}: {exc}", line=start)
        raise report_error(
            ErrorCode.VALIDATION_FAILED,
            f"line {start}: the file cannot be read as {report.format.upper()} ({exc})",
            report,
        ) from None


def _sniff_delimiter(text: str, candidates: tuple[str, ...]) -> str:
    """The candidate that splits the most records into the same number (>= 2) of cells.

    It must split the first record too (the header, or the first row of a headerless
    file): in a one-column file (source terms only) a comma or semicolon inside the
    terms is text, not a delimiter.
    """
    sample = text[:65536]
    best, best_fraction = candidates[0], 0.0
    for delimiter in candidates:
        widths: list[int] = []
        try:
            for cells in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter):
                if cells:
                    widths.append(len(cells))
                if len(widths) >= 50:
                    break
        except csv.Error:
            continue
        if not widths or widths[0] < 2:
            continue
        mode = max(set(widths), key=widths.count)
        fraction = widths.count(mode) / len(widths)
        # Ties go to the earlier candidate: tab before comma, comma before semicolon.
        if mode >= 2 and fraction > best_fraction:
            best, best_fraction = delimiter, fraction
    return best


def _layout(
    records: list[tuple[int, list[str]]], options: ParseOptions, report: ImportReport
) -> _Layout:
    _, header = records[0]
    width = max(len(cells) for _, cells in records)
    names = [h.strip() for h in header]
    langs = [canonical_language(n) for n in names]
    lowered = [n.lower() for n in names]
    is_header = _looks_like_header(names, langs, lowered)
    if not is_header:
        return _headerless(width, options, report)

    layout = _Layout(source_col=-1, source_language="", width=len(names))
    ignored: list[str] = []
    lang_cols: list[tuple[int, str]] = []
    for col, (name, lang, low) in enumerate(zip(names, langs, lowered, strict=True)):
        if lang in _ID_LIKE_LANGUAGES and _numeric_column(records, col):
            report.warnings.append(
                f"column {name!r} holds only numbers: read as an identifier, not a language"
            )
            lang = None
        if lang is not None:
            lang_cols.append((col, lang))
        elif low in _NOTE_NAMES and layout.note_col is None:
            layout.note_col = col
        elif low in _PRIORITY_NAMES and layout.priority_col is None:
            layout.priority_col = col
        elif low in _LANG_NAMES and layout.lang_col is None:
            layout.lang_col = col
        elif low in _TARGET_NAMES and layout.target_col is None:
            layout.target_col = col
        elif low in _SOURCE_NAMES and layout.source_col < 0:
            layout.source_col = col
        else:
            ignored.append(name or f"column {col + 1}")
    report.ignored_columns = ignored

    wanted = canonical_language(options.source_language) if options.source_language else None
    if layout.source_col >= 0:
        # A column named "source": its language must come from the request.
        layout.source_language = wanted or "en"
        if not wanted:
            report.warnings.append("source column has no language code; assumed 'en'")
    else:
        source = next((c for c in lang_cols if wanted is None or c[1] == wanted), None)
        if source is None:
            raise report_error(
                ErrorCode.VALIDATION_FAILED,
                f"no column for source language {wanted!r}"
                if wanted
                else "the header names no language columns (expected codes such as en, de, zh-CN)",
                report,
            )
        layout.source_col, layout.source_language = source
        lang_cols.remove(source)

    long_form = layout.lang_col is not None and layout.target_col is not None
    if long_form:
        ignored.extend(names[c] for c, _ in lang_cols)
    elif layout.target_col is not None:
        target = canonical_language(options.target_language or "")
        if target is None:
            raise report_error(
                ErrorCode.VALIDATION_FAILED,
                "the target column names no language: pass target_language",
                report,
            )
        layout.target_cols = [*lang_cols, (layout.target_col, target)]
    else:
        layout.target_cols = lang_cols
    return layout


def _looks_like_header(names: list[str], langs: list[str | None], lowered: list[str]) -> bool:
    n_langs = sum(1 for lang in langs if lang)
    n_known = sum(1 for low in lowered if low in _KNOWN)
    if len(names) == 2:
        # "AI,KI" is a row (ki is Kikuyu): a two-column header must be all names.
        return all(lang or low in _KNOWN for lang, low in zip(langs, lowered, strict=True))
    if n_langs == 0 and n_known < 2:
        return False
    return all(
        lang or low in _KNOWN or _COLUMN_NAME.match(name) or not name
        for name, lang, low in zip(names, langs, lowered, strict=True)
    )


def _numeric_column(records: list[tuple[int, list[str]]], col: int) -> bool:
    values = [cells[col].strip() for _, cells in records[1:] if col < len(cells)]
    values = [v for v in values if v]
    return bool(values) and all(v.isdigit() for v in values)


def _headerless(width: int, options: ParseOptions, report: ImportReport) -> _Layout:
    if width != 2:
        raise report_error(
            ErrorCode.VALIDATION_FAILED,
            f"no header row of language codes, and {width} columns: a file without a header "
            "must have exactly two columns (source, target)",
            report,
        )
    source = canonical_language(options.source_language or "en")
    target = canonical_language(options.target_language or "")
    if source is None or target is None:
        raise report_error(
            ErrorCode.VALIDATION_FAILED,
            "a two-column file without a header needs target_language (and source_language "
            "unless it is en), or a header row of language codes such as 'en,de'",
            report,
        )
    return _Layout(0, source, [(1, target)], width=2, has_header=False)


def _unescape(cell: str) -> str:
    if cell.startswith("'") and _escaped(cell):
        return cell[1:]
    return cell


def _escape(cell: str) -> str:
    # OWASP CSV injection advice: a leading quote makes spreadsheets show the text
    # instead of evaluating it. A cell that reads as escaped already (quotes, then a
    # formula character) gets one more quote, so that import gives back exactly it.
    if _escaped(cell):
        return "'" + cell
    return cell


def _escaped(cell: str) -> bool:
    """Whether the cell, after any leading quotes, starts like a formula."""
    rest = cell.lstrip("'")
    return bool(rest) and rest[0] in _FORMULA_START


def export_delimited(snapshot: GlossarySnapshot, delimiter: str) -> ExportedFile:
    widths: dict[str, int] = {}
    for entry in snapshot.entries:
        for lang, options in entry.targets.items():
            widths[lang] = max(widths.get(lang, 0), len(options))
    with_note = any(e.note for e in snapshot.entries)
    with_priority = any(e.priority for e in snapshot.entries)
    header = [snapshot.source_language]
    for lang, count in widths.items():
        header.extend([lang] * count)
    header += ["note"] * with_note + ["priority"] * with_priority
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for entry in snapshot.entries:
        row = [entry.source]
        for lang, count in widths.items():
            options = entry.targets.get(lang, ())
            row.extend(list(options) + [""] * (count - len(options)))
        if with_note:
            row.append(entry.note or "")
        if with_priority:
            row.append(str(entry.priority))
        writer.writerow([_escape(c) for c in row])
    if delimiter == "\t":
        return ExportedFile(
            buffer.getvalue().encode(), "text/tab-separated-values; charset=utf-8", "tsv"
        )
    # The BOM makes Excel read UTF-8 (CJK terms) correctly; our importer ignores it.
    return ExportedFile(buffer.getvalue().encode("utf-8-sig"), "text/csv; charset=utf-8", "csv")
