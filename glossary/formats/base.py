"""Types shared by the format modules."""

from __future__ import annotations

from dataclasses import dataclass, field

from glossary.model import GlossaryEntry
from glossary.report import ImportReport
from glossary.validation import GlossaryLimits

IMPORT_FORMATS = ("csv", "tsv", "json", "tbx", "tmx")
EXPORT_FORMATS = ("csv", "tsv", "json", "tbx", "tmx")


@dataclass(frozen=True, slots=True)
class ParseOptions:
    # None: auto-detect from the file name and content.
    format: str | None = None
    # Overrides the language found in the file (header, TBX/TMX attributes).
    source_language: str | None = None
    # Needed only for headerless two-column files, which name no languages.
    target_language: str | None = None
    limits: GlossaryLimits = field(default_factory=GlossaryLimits)


@dataclass(frozen=True, slots=True)
class ParsedGlossary:
    source_language: str
    entries: tuple[GlossaryEntry, ...]
    report: ImportReport
    # A name found inside the file (JSON ``name``, TBX/TMX title), if any.
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ExportedFile:
    content: bytes
    media_type: str
    extension: str
