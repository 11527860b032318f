"""Upload handling shared by the REST endpoints: files and JSON bodies to validated entries."""

from __future__ import annotations

from dataclasses import dataclass

from glossary.formats import IMPORT_FORMATS, ParsedGlossary, ParseOptions, parse_glossary
from glossary.languages import canonical_language
from glossary.report import ImportReport
from glossary.schemas import EntryIn, GlossaryCreate
from glossary.validation import EntryCollector, GlossaryLimits, normalise_text, report_error
from kernel.errors import ErrorCode, RasstError


@dataclass(frozen=True, slots=True)
class UploadRequest:
    """One create/replace request, whichever way its glossary arrived."""

    data: bytes | None = None
    filename: str | None = None
    body: GlossaryCreate | None = None
    name: str | None = None
    format: str | None = None
    source_language: str | None = None
    target_language: str | None = None


def parse_upload(upload: UploadRequest, limits: GlossaryLimits) -> ParsedGlossary:
    fmt = upload.format.strip().lower() if upload.format else None
    if fmt and fmt not in IMPORT_FORMATS:
        raise RasstError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"unknown format {upload.format!r}; use one of {', '.join(IMPORT_FORMATS)}",
        )
    source = _language(upload.source_language, "source_language")
    target = _language(upload.target_language, "target_language")
    if upload.body is not None:
        return parse_entries(upload.body.entries, source or upload.body.source_language, limits)
    assert upload.data is not None
    return parse_glossary(
        upload.data,
        ParseOptions(format=fmt, source_language=source, target_language=target, limits=limits),
        filename=upload.filename,
    )


def parse_entries(
    entries: list[EntryIn], source_language: str, limits: GlossaryLimits
) -> ParsedGlossary:
    """JSON-body entries go through the same normalisation and limits as files."""
    source = canonical_language(source_language)
    if source is None:
        raise RasstError(ErrorCode.VALIDATION_FAILED, f"{source_language!r} is not a language code")
    report = ImportReport(format="json-body", source_language=source)
    collector = EntryCollector(report, limits)
    for i, entry in enumerate(entries):
        where = f"entries[{i}]"
        targets: list[tuple[str, str]] = []
        bad: list[str] = []
        for lang, values in entry.targets.items():
            code = canonical_language(lang)
            if code is None:
                bad.append(lang)
                continue
            targets.extend((code, v) for v in ([values] if isinstance(values, str) else values))
        if bad:
            report.rows_read += 1
            report.skip(f"not language codes: {', '.join(map(repr, bad))}", item=where)
            continue
        collector.add(entry.source, targets, item=where, note=entry.note, priority=entry.priority)
    return ParsedGlossary(source, collector.finish(), report)


def glossary_name(
    requested: str | None, parsed: ParsedGlossary, filename: str | None, limits: GlossaryLimits
) -> str:
    for candidate in (requested, parsed.name, _stem(filename)):
        name = normalise_text(candidate or "")
        if name:
            if len(name) > limits.max_name_chars:
                raise report_error(
                    ErrorCode.VALIDATION_FAILED,
                    f"name longer than {limits.max_name_chars} characters",
                    parsed.report,
                )
            return name
    return "glossary"


def _stem(filename: str | None) -> str | None:
    if not filename:
        return None
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def _language(value: str | None, field: str) -> str | None:
    if not value:
        return None
    code = canonical_language(value)
    if code is None:
        raise RasstError(ErrorCode.VALIDATION_FAILED, f"{field}: {value!r} is not a language code")
    return code
