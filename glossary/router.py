"""REST API of the glossary service: ``/v1/glossaries`` and the admin ``/v1/tenants``.

The router only authenticates, reads the request and shapes the response;
parsing runs in ``glossary.service``, document reading and term extraction for
drafts in ``glossary.extract``, storage in ``glossary.store``, all off the
event loop.

Why one module past 400 lines: it is one decorated function per REST route (with its OpenAPI
declaration); form parsing lives in ``glossary.forms``, the OpenAPI pieces in
``glossary.openapi``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from glossary.auth import authenticate, check_admin
from glossary.extract import (
    DraftRequest,
    ExtractionLimits,
    GlossaryDraft,
    TermFilterParams,
    draft_glossary,
)
from glossary.formats import export_glossary
from glossary.forms import read_extract_form, read_upload
from glossary.model import GlossaryEntry
from glossary.openapi import (
    ADMIN_ERRORS,
    ERRORS,
    UPLOAD_ERRORS,
    WRITE_ERRORS,
    extract_body_doc,
    upload_body_doc,
)
from glossary.report import ImportReport
from glossary.schemas import (
    ApiKeyCreated,
    ApiKeyOut,
    EntryOut,
    GlossaryDetail,
    GlossaryList,
    GlossaryPatch,
    GlossaryPatched,
    GlossarySummary,
    GlossaryWritten,
    TenantCreate,
    TenantCreated,
    TenantOut,
)
from glossary.service import glossary_name, parse_entries, parse_upload
from glossary.settings import GlossarySettings
from glossary.store import GlossaryStore
from glossary.validation import normalise_text, storable
from kernel.errors import ErrorCode, ErrorEnvelope, RasstError

# Paging offsets the database can bind (a glossary never has this many entries anyway).
MAX_OFFSET = 2**31 - 1
# Glossary drafts read documents with pure-Python parsers that hold the GIL:
# at most this many at once per gateway process; further requests wait.
_EXTRACT_CONCURRENCY = 2


def get_store(request: Request) -> GlossaryStore:
    store: GlossaryStore = request.app.state.glossary_store
    return store


def get_settings(request: Request) -> GlossarySettings:
    settings: GlossarySettings = request.app.state.settings
    return settings


StoreDep = Annotated[GlossaryStore, Depends(get_store)]
SettingsDep = Annotated[GlossarySettings, Depends(get_settings)]
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer API_KEY")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Alternative to the Bearer header."
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
ApiKeyDep = Annotated[str | None, Depends(_api_key_header)]


def _presented_key(bearer: HTTPAuthorizationCredentials | None, header: str | None) -> str | None:
    return bearer.credentials if bearer is not None else header


def get_tenant(store: StoreDep, settings: SettingsDep, bearer: BearerDep, header: ApiKeyDep) -> str:
    return authenticate(store, _presented_key(bearer, header), auth_enabled=settings.auth_enabled)


def require_admin(settings: SettingsDep, bearer: BearerDep, header: ApiKeyDep) -> None:
    check_admin(_presented_key(bearer, header), settings.admin_key)


TenantDep = Annotated[str, Depends(get_tenant)]
IfMatch = Annotated[
    str | None,
    Header(description='Only change the glossary if it is still at this ETag (e.g. "3").'),
]

router = APIRouter(prefix="/v1")


# -- glossaries ------------------------------------------------------------------------------


@router.post(
    "/glossaries",
    tags=["glossaries"],
    status_code=status.HTTP_201_CREATED,
    response_model=GlossaryWritten,
    responses=UPLOAD_ERRORS,
    openapi_extra=upload_body_doc(),
    summary="Upload a glossary (multipart file or JSON body)",
)
async def create_glossary(
    request: Request, response: Response, store: StoreDep, tenant: TenantDep
) -> GlossaryWritten:
    upload = await read_upload(request, store)

    def work() -> GlossaryWritten:
        parsed = parse_upload(upload, store.limits)
        requested = upload.name or (upload.body.name if upload.body else None)
        name = glossary_name(requested, parsed, upload.filename, store.limits)
        info = store.create_glossary(tenant, name, parsed.source_language, parsed.entries)
        return GlossaryWritten.of(info, parsed.report)

    written = await run_in_threadpool(work)
    response.headers["ETag"] = written.etag
    response.headers["Location"] = f"/v1/glossaries/{written.id}"
    return written


@router.post(
    "/glossaries/extract",
    tags=["glossaries"],
    response_model=GlossaryDraft,
    responses={
        **UPLOAD_ERRORS,
        201: {"model": GlossaryDraft, "description": "Drafted and saved (save=true)."},
        415: {"model": ErrorEnvelope, "description": "Not PDF, PPTX, HTML, Markdown or text."},
    },
    openapi_extra=extract_body_doc(),
    summary="Draft a glossary from the talk's documents (paper, slides)",
)
async def extract_glossary(
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    tenant: TenantDep,
) -> GlossaryDraft:
    """Candidate terms with evidence, filtered and translated by the LLM when one is configured.

    The draft is a glossary in our JSON format: save it, edit it, upload it with
    ``POST /v1/glossaries``; or send ``save=true`` to store it at once (201).
    """
    limits = ExtractionLimits(max_file_bytes=store.limits.max_file_bytes)
    form = await read_extract_form(request, limits, store.limits.max_name_chars)
    llm = (
        TermFilterParams(
            url=settings.llm_url, model=settings.llm_model, api_key=settings.llm_api_key
        )
        if settings.llm_url
        else None
    )
    draft = await draft_glossary(
        DraftRequest(
            uploads=form.uploads,
            languages=form.languages,
            max_terms=form.max_terms,
            name=form.name,
            use_llm=form.use_llm if form.use_llm is not None else llm is not None,
            llm=llm,
        ),
        limits,
        limiter=_extract_limiter(request),
    )
    if not form.save:
        return draft

    def save() -> GlossaryWritten:
        parsed = parse_entries(
            [entry.entry() for entry in draft.entries], draft.source_language, store.limits
        )
        name = glossary_name(draft.name, parsed, None, store.limits)
        info = store.create_glossary(tenant, name, parsed.source_language, parsed.entries)
        return GlossaryWritten.of(info, parsed.report)

    written = await run_in_threadpool(save)
    response.status_code = status.HTTP_201_CREATED
    response.headers["ETag"] = written.etag
    response.headers["Location"] = f"/v1/glossaries/{written.id}"
    return draft.model_copy(update={"glossary_id": written.id, "saved": written})


@router.get("/glossaries", tags=["glossaries"], response_model=GlossaryList, responses=ERRORS)
def list_glossaries(
    store: StoreDep,
    tenant: TenantDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> GlossaryList:
    items, total = store.list_glossaries(tenant, offset=offset, limit=limit)
    return GlossaryList(
        items=[GlossarySummary.of(i) for i in items], total=total, offset=offset, limit=limit
    )


@router.get(
    "/glossaries/{glossary_id}",
    tags=["glossaries"],
    response_model=GlossaryDetail,
    responses={**ERRORS, 304: {"description": "Unchanged since If-None-Match."}},
    summary="A glossary with one page of its entries",
)
def get_glossary(
    glossary_id: str,
    response: Response,
    store: StoreDep,
    tenant: TenantDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Any:
    info, entries = store.get_entries(tenant, glossary_id, offset=offset, limit=limit)
    if if_none_match and info.etag in _etags(if_none_match):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": info.etag})
    response.headers["ETag"] = info.etag
    return GlossaryDetail(
        **GlossarySummary.of(info).model_dump(),
        entries=[EntryOut.of(e) for e in entries],
        offset=offset,
        limit=limit,
    )


@router.put(
    "/glossaries/{glossary_id}",
    tags=["glossaries"],
    response_model=GlossaryWritten,
    responses=WRITE_ERRORS,
    openapi_extra=upload_body_doc(),
    summary="Replace all entries (multipart file or JSON body)",
)
async def replace_glossary(
    glossary_id: str,
    request: Request,
    response: Response,
    store: StoreDep,
    tenant: TenantDep,
    if_match: IfMatch = None,
) -> GlossaryWritten:
    expected = _expected_version(if_match)
    upload = await read_upload(request, store)

    def work() -> GlossaryWritten:
        current = store.get_info(tenant, glossary_id)
        parsed = parse_upload(upload, store.limits)
        requested = upload.name or (upload.body.name if upload.body else None) or current.name
        name = glossary_name(requested, parsed, None, store.limits)
        info = store.replace_glossary(
            tenant,
            glossary_id,
            name=name,
            source_language=parsed.source_language,
            entries=parsed.entries,
            expected_version=expected,
        )
        return GlossaryWritten.of(info, parsed.report)

    written = await run_in_threadpool(work)
    response.headers["ETag"] = written.etag
    return written


@router.patch(
    "/glossaries/{glossary_id}",
    tags=["glossaries"],
    response_model=GlossaryPatched,
    responses={**ERRORS, 412: WRITE_ERRORS[412]},
    summary="Rename, add or replace entries, remove entries",
)
def patch_glossary(
    glossary_id: str,
    patch: GlossaryPatch,
    response: Response,
    store: StoreDep,
    tenant: TenantDep,
    if_match: IfMatch = None,
) -> GlossaryPatched:
    expected = _expected_version(if_match)
    unstorable = [term for term in patch.remove if not storable(term)]
    if unstorable:
        raise RasstError(
            ErrorCode.VALIDATION_FAILED,
            "terms to remove contain control characters or unpaired surrogates",
            detail=[{"loc": "remove", "msg": f"{len(unstorable)} term(s) cannot be stored"}],
        )
    current = store.get_info(tenant, glossary_id)
    changes = patch.model_dump(exclude_unset=True)
    report = ImportReport(format="json-body", source_language=current.source_language)
    add: tuple[GlossaryEntry, ...] = ()
    if patch.add:
        parsed = parse_entries(patch.add, current.source_language, store.limits)
        add, report = parsed.entries, parsed.report
    result = store.patch_glossary(
        tenant,
        glossary_id,
        name=normalise_text(changes["name"]) if changes.get("name") else None,
        add=add,
        remove=[normalise_text(s) for s in patch.remove],
        expected_version=expected,
    )
    response.headers["ETag"] = result.info.etag
    return GlossaryPatched(
        id=result.info.id,
        version=result.info.version,
        etag=result.info.etag,
        entry_count=result.info.entry_count,
        added=result.added,
        updated=result.updated,
        removed=result.removed,
        not_found=list(result.not_found),
        report=report,
    )


@router.delete(
    "/glossaries/{glossary_id}",
    tags=["glossaries"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ERRORS, 412: WRITE_ERRORS[412]},
)
def delete_glossary(
    glossary_id: str, store: StoreDep, tenant: TenantDep, if_match: IfMatch = None
) -> Response:
    store.delete_glossary(tenant, glossary_id, expected_version=_expected_version(if_match))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/glossaries/{glossary_id}/export",
    tags=["glossaries"],
    responses={
        **ERRORS,
        200: {
            "description": "The glossary as a file.",
            "content": {
                "text/csv": {},
                "text/tab-separated-values": {},
                "application/json": {},
                "application/x-tbx+xml": {},
                "application/x-tmx+xml": {},
            },
        },
    },
    summary="Download as CSV, TSV, JSON, TBX-Basic or TMX",
)
def export(
    glossary_id: str,
    store: StoreDep,
    tenant: TenantDep,
    format: Annotated[Literal["csv", "tsv", "json", "tbx", "tmx"], Query()] = "csv",
) -> Response:
    snapshot = store.get_snapshot(tenant, glossary_id)
    exported = export_glossary(snapshot, format)
    return Response(
        exported.content,
        media_type=exported.media_type,
        headers={
            "ETag": f'"{snapshot.version}"',
            # The id, not the user-chosen name: nothing user-controlled in a header.
            "Content-Disposition": f'attachment; filename="{snapshot.id}.{exported.extension}"',
        },
    )


# -- tenants and keys (admin) ------------------------------------------------------------------

_admin = [Depends(require_admin)]


@router.post(
    "/tenants",
    tags=["tenants"],
    dependencies=_admin,
    status_code=status.HTTP_201_CREATED,
    response_model=TenantCreated,
    responses={**ADMIN_ERRORS, 409: {"model": ErrorEnvelope}},
    summary="Create a tenant and its first API key",
)
def create_tenant(body: TenantCreate, store: StoreDep) -> TenantCreated:
    record = store.create_tenant(body.name, body.id)
    key, plain = store.create_api_key(record.id)
    return TenantCreated(
        **TenantOut.of(record).model_dump(),
        api_key=ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), api_key=plain),
    )


@router.get(
    "/tenants",
    tags=["tenants"],
    dependencies=_admin,
    response_model=list[TenantOut],
    responses=ADMIN_ERRORS,
)
def list_tenants(store: StoreDep) -> list[TenantOut]:
    return [TenantOut.of(t) for t in store.list_tenants()]


@router.post(
    "/tenants/{tenant_id}/keys",
    tags=["tenants"],
    dependencies=_admin,
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=ADMIN_ERRORS,
)
def create_key(tenant_id: str, store: StoreDep) -> ApiKeyCreated:
    key, plain = store.create_api_key(tenant_id)
    return ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), api_key=plain)


@router.get(
    "/tenants/{tenant_id}/keys",
    tags=["tenants"],
    dependencies=_admin,
    response_model=list[ApiKeyOut],
    responses=ADMIN_ERRORS,
)
def list_keys(tenant_id: str, store: StoreDep) -> list[ApiKeyOut]:
    return [ApiKeyOut.of(k) for k in store.list_api_keys(tenant_id)]


@router.delete(
    "/tenants/{tenant_id}/keys/{key_id}",
    tags=["tenants"],
    dependencies=_admin,
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ADMIN_ERRORS,
)
def revoke_key(tenant_id: str, key_id: str, store: StoreDep) -> Response:
    store.revoke_api_key(tenant_id, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- helpers -------------------------------------------------------------------------------------


def _extract_limiter(request: Request) -> anyio.CapacityLimiter:
    """The app's limiter for document reading, made on first use (inside the event loop)."""
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "extract_limiter", None)
    if limiter is None:
        limiter = state.extract_limiter = anyio.CapacityLimiter(_EXTRACT_CONCURRENCY)
    return limiter


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def _expected_version(if_match: str | None) -> int | None:
    if not if_match or if_match.strip() == "*":
        return None
    for tag in _etags(if_match):
        value = tag.strip('"')
        # ASCII digits only: "²".isdigit() is true but int("²") raises.
        if value.isascii() and value.isdigit():
            return int(value)
    raise RasstError(
        ErrorCode.PRECONDITION_FAILED, f"If-Match {if_match!r} is not an ETag we issue"
    )
