"""Wire models of the glossary REST API (request bodies and responses)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from glossary.model import GlossaryEntry
from glossary.report import ImportReport
from glossary.store import GlossaryInfo
from glossary.tenants import ApiKeyRecord, TenantRecord

LANGUAGE_CODE = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntryIn(_In):
    source: str = Field(min_length=1, description="The source-language term.")
    targets: dict[str, list[str] | str] = Field(
        default_factory=dict,
        description="Language code -> translations, preferred first (a string for just one).",
        examples=[{"de": ["BLEU-Wert"], "zh": "BLEU 分数"}],
    )
    note: str | None = None
    priority: int = Field(default=0, description="Higher wins when terms compete.")


class GlossaryCreate(_In):
    """A whole glossary as JSON: the body of a JSON create (POST) or replace (PUT)."""

    name: str | None = Field(default=None, max_length=200)
    source_language: str = Field(default="en", pattern=LANGUAGE_CODE)
    entries: list[EntryIn]


class GlossaryPatch(_In):
    """Rename, add or replace entries (matched by source term), remove entries by source term."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    add: list[EntryIn] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list, description="Source terms to remove.")


class EntryOut(BaseModel):
    source: str
    targets: dict[str, list[str]]
    note: str | None
    priority: int

    @classmethod
    def of(cls, entry: GlossaryEntry) -> EntryOut:
        return cls(
            source=entry.source,
            targets={lang: list(v) for lang, v in entry.targets.items()},
            note=entry.note,
            priority=entry.priority,
        )


class GlossarySummary(BaseModel):
    id: str
    name: str
    version: int
    etag: str
    source_language: str
    target_languages: list[str]
    entry_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: GlossaryInfo) -> GlossarySummary:
        return cls(
            id=info.id,
            name=info.name,
            version=info.version,
            etag=info.etag,
            source_language=info.source_language,
            target_languages=list(info.target_languages),
            entry_count=info.entry_count,
            created_at=info.created_at,
            updated_at=info.updated_at,
        )


class GlossaryList(BaseModel):
    items: list[GlossarySummary]
    total: int
    offset: int
    limit: int


class GlossaryDetail(GlossarySummary):
    """A glossary with one page of its entries (``offset``/``limit``)."""

    entries: list[EntryOut]
    offset: int
    limit: int


class GlossaryWritten(BaseModel):
    """The answer to an upload (POST) or replace (PUT)."""

    id: str
    name: str
    version: int
    etag: str
    entry_count: int
    report: ImportReport

    @classmethod
    def of(cls, info: GlossaryInfo, report: ImportReport) -> GlossaryWritten:
        return cls(
            id=info.id,
            name=info.name,
            version=info.version,
            etag=info.etag,
            entry_count=info.entry_count,
            report=report,
        )


class GlossaryPatched(BaseModel):
    id: str
    version: int
    etag: str
    entry_count: int
    added: int
    updated: int
    removed: int
    not_found: list[str] = Field(description="Terms asked to be removed that were not there.")
    report: ImportReport


class TenantCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, record: TenantRecord) -> TenantOut:
        return cls(id=record.id, name=record.name, created_at=record.created_at)


class ApiKeyOut(BaseModel):
    id: str
    tenant_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> ApiKeyOut:
        return cls(
            id=record.id,
            tenant_id=record.tenant_id,
            prefix=record.prefix,
            created_at=record.created_at,
            revoked_at=record.revoked_at,
        )


class ApiKeyCreated(ApiKeyOut):
    api_key: str = Field(description="The key itself. Shown once: only its hash is stored.")


class TenantCreated(TenantOut):
    api_key: ApiKeyCreated
