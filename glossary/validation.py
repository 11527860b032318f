"""Normalisation, limits and duplicate merging shared by every import format.

Parsers only find rows; everything that decides whether a row becomes an entry
lives here, so CSV, JSON, TBX and TMX uploads obey the same rules.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from glossary.model import GlossaryEntry
from glossary.report import ImportReport
from kernel.errors import ErrorCode, RasstError

MiB = 1024 * 1024
# How many skipped rows a report lists in full; a 100k-row file of junk must not
# produce a 100k-item error body.
MAX_REPORTED_SKIPS = 1000
# Priorities the store keeps: its column is a 32-bit INTEGER in PostgreSQL.
PRIORITY_RANGE = (-(2**31), 2**31 - 1)


@dataclass(frozen=True, slots=True)
class GlossaryLimits:
    """Defaults at least as generous as DeepL and Amazon Translate (10 MiB, 100k entries)."""

    max_file_bytes: int = 10 * MiB
    max_entries: int = 100_000
    max_term_chars: int = 1024
    max_note_chars: int = 4096
    max_translations_per_language: int = 32
    max_glossaries_per_tenant: int = 1000
    max_name_chars: int = 200


_WHITESPACE = re.compile(r"\s+")
# C0/C1 controls other than whitespace, which normalisation already folded; lone
# surrogates (JSON "\ud800"), which no database or UTF-8 file can hold; and U+FFFE and
# U+FFFF, which XML 1.0 forbids, so a stored term always exports as TBX and TMX.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def storable(value: str) -> bool:
    """False for text with control characters, lone surrogates or U+FFFE/U+FFFF."""
    return not _CONTROL.search(value)


def normalise_text(value: str) -> str:
    """NFC, every whitespace run (tabs, NBSP, line breaks) as one space, trimmed."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", value)).strip()


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def report_error(code: ErrorCode, message: str, report: ImportReport) -> RasstError:
    return RasstError(code, message, detail={"report": _bounded(report).model_dump(mode="json")})


def _bounded(report: ImportReport) -> ImportReport:
    if len(report.skipped) <= MAX_REPORTED_SKIPS:
        return report
    extra = len(report.skipped) - MAX_REPORTED_SKIPS
    return report.model_copy(
        update={
            "skipped": report.skipped[:MAX_REPORTED_SKIPS],
            "warnings": [*report.warnings, f"{extra} more skipped rows not listed"],
        }
    )


class _Draft:
    __slots__ = ("note", "priority", "source", "targets")

    def __init__(self, source: str, note: str | None, priority: int) -> None:
        self.source = source
        self.targets: dict[str, list[str]] = {}
        self.note = note
        self.priority = priority


class EntryCollector:
    """Turns raw rows into entries: normalises, checks limits, merges duplicates, reports.

    Rows that are malformed are skipped and reported; a row that breaks a size
    limit fails the whole upload, because it usually means the file was read
    wrongly (a wrong delimiter turns a table into one giant cell).
    """

    def __init__(self, report: ImportReport, limits: GlossaryLimits) -> None:
        self.report = report
        self.limits = limits
        self._drafts: dict[str, _Draft] = {}
        self._oversized = 0

    def add(
        self,
        source: str | None,
        targets: Iterable[tuple[str, str | None]],
        *,
        line: int | None = None,
        item: str | None = None,
        note: str | None = None,
        priority: str | int | None = None,
    ) -> None:
        self.report.rows_read += 1
        term = normalise_text(source or "")
        if not term:
            self.report.skip("empty source term", line=line, item=item)
            return
        if _CONTROL.search(term):
            self.report.skip("source term contains control characters", line=line, item=item)
            return
        if not self._fits(term, self.limits.max_term_chars, "source term", line, item):
            return
        clean_note = normalise_text(note) if note else None
        if clean_note and _CONTROL.search(clean_note):
            self.report.skip("note contains control characters", line=line, item=item)
            return
        if clean_note and not self._fits(
            clean_note, self.limits.max_note_chars, "note", line, item
        ):
            return
        try:
            rank = int(priority) if priority not in (None, "") else 0
        except (TypeError, ValueError, OverflowError):
            # OverflowError: JSON's Infinity (or 1e999) is a float int() cannot take.
            self.report.skip(
                f"priority {_preview(priority)} is not an integer", line=line, item=item
            )
            return
        if not PRIORITY_RANGE[0] <= rank <= PRIORITY_RANGE[1]:
            self.report.skip(
                f"priority {_preview(rank)} is out of range ({PRIORITY_RANGE[0]} to "
                f"{PRIORITY_RANGE[1]})",
                line=line,
                item=item,
            )
            return
        clean: list[tuple[str, str]] = []
        for lang, text in targets:
            value = normalise_text(text or "")
            if not value:
                continue
            if _CONTROL.search(value):
                self.report.skip(
                    f"{lang} translation contains control characters", line=line, item=item
                )
                return
            if not self._fits(value, self.limits.max_term_chars, f"{lang} translation", line, item):
                return
            clean.append((lang, value))

        draft = self._drafts.get(term)
        if draft is None:
            if len(self._drafts) >= self.limits.max_entries:
                raise report_error(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"more than {self.limits.max_entries} entries in one glossary",
                    self.report,
                )
            draft = self._drafts[term] = _Draft(term, clean_note, rank)
        else:
            self.report.merged_duplicates += 1
            if clean_note and draft.note != clean_note:
                draft.note = f"{draft.note}; {clean_note}" if draft.note else clean_note
            draft.priority = max(draft.priority, rank)
        for lang, value in clean:
            options = draft.targets.setdefault(lang, [])
            if value in options:
                continue
            if len(options) >= self.limits.max_translations_per_language:
                self._oversized += 1
                self.report.skip(
                    f"more than {self.limits.max_translations_per_language} {lang} translations "
                    f"for {term!r}",
                    line=line,
                    item=item,
                )
                continue
            options.append(value)

    def _fits(self, value: str, limit: int, what: str, line: int | None, item: str | None) -> bool:
        if len(value) <= limit:
            return True
        self._oversized += 1
        self.report.skip(
            f"{what} has {len(value)} characters (limit {limit})", line=line, item=item
        )
        return False

    def finish(self) -> tuple[GlossaryEntry, ...]:
        if self._oversized:
            raise report_error(
                ErrorCode.LIMIT_EXCEEDED,
                f"{self._oversized} rows exceed the size limits (terms up to "
                f"{self.limits.max_term_chars} characters); nothing was stored",
                self.report,
            )
        entries = tuple(
            GlossaryEntry(
                source=d.source,
                targets={lang: tuple(v) for lang, v in d.targets.items()},
                note=d.note,
                priority=d.priority,
            )
            for d in self._drafts.values()
        )
        if not entries:
            raise report_error(
                ErrorCode.VALIDATION_FAILED,
                "the file has no usable glossary entries; see the report",
                self.report,
            )
        langs: dict[str, None] = {}
        for entry in entries:
            langs.update(dict.fromkeys(entry.targets))
        self.report.target_languages = list(langs)
        self.report.entries_accepted = len(entries)
        self.report.entries_without_translations = sum(1 for e in entries if not e.targets)
        return entries
