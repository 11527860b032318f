"""The import report: what an upload produced, what it merged and what it left out, and why."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SkippedRow(BaseModel):
    line: int | None = Field(
        default=None, description="1-based line in the uploaded file, when the format has lines."
    )
    item: str | None = Field(
        default=None, description="Where line numbers do not apply: JSON key or index, TBX id."
    )
    reason: str


class ImportReport(BaseModel):
    format: str = Field(
        description="csv, tsv, json, rasst-json, tbx or tmx; 'unknown' if undetected."
    )
    encoding: str | None = None
    delimiter: str | None = None
    source_language: str | None = None
    target_languages: list[str] = Field(default_factory=list)
    rows_read: int = 0
    entries_accepted: int = 0
    merged_duplicates: int = Field(
        default=0, description="Rows whose source term repeated an earlier one; merged into it."
    )
    entries_without_translations: int = 0
    skipped: list[SkippedRow] = Field(default_factory=list)
    ignored_columns: list[str] = Field(
        default_factory=list, description="Columns that are neither languages nor note/priority."
    )
    warnings: list[str] = Field(default_factory=list)

    def skip(self, reason: str, *, line: int | None = None, item: str | None = None) -> None:
        self.skipped.append(SkippedRow(line=line, item=item, reason=reason))
