"""Reading the glossary API's hand-parsed bodies: uploads and draft forms.

Bodies are counted while they stream in and refused past their limit, whatever
``Content-Length`` says; multipart forms are parsed here, not by FastAPI, so the limits and
the error codes are ours.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from glossary.extract import DEFAULT_MAX_TERMS, MAX_TERMS, ExtractionLimits, UploadedDocument
from glossary.languages import canonical_language
from glossary.report import ImportReport
from glossary.schemas import GlossaryCreate
from glossary.service import UploadRequest
from glossary.store import GlossaryStore
from glossary.validation import normalise_text, report_error
from kernel.errors import ErrorCode, RasstError

# Multipart framing and the small form fields around the file.
_MULTIPART_OVERHEAD = 64 * 1024
_MAX_DRAFT_LANGUAGES = 8


async def body_chunks(request: Request) -> AsyncGenerator[bytes, None]:
    """The request body as it arrives; a client that hangs up mid-body is a 400, not a crash."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise RasstError(
            ErrorCode.BAD_REQUEST, "the client disconnected before the whole body arrived"
        ) from None


async def read_upload(request: Request, store: GlossaryStore) -> UploadRequest:
    limit = store.limits.max_file_bytes
    cap = limit + _MULTIPART_OVERHEAD
    too_large = report_error(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"the upload is larger than the {limit}-byte limit",
        ImportReport(format="unknown"),
    )
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise too_large
    body = bytearray()
    async for chunk in body_chunks(request):
        body += chunk
        if len(body) > cap:
            raise too_large
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_multipart(request, bytes(body))
    if content_type == "application/json":
        try:
            return UploadRequest(body=GlossaryCreate.model_validate_json(bytes(body)))
        except ValidationError as exc:
            problems = [
                {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            raise RasstError(
                ErrorCode.VALIDATION_FAILED, "the JSON body is not a glossary", detail=problems
            ) from None
    raise RasstError(
        ErrorCode.UNSUPPORTED_FORMAT,
        "send multipart/form-data with a 'file' field, or an application/json glossary",
    )


async def _read_multipart(request: Request, body: bytes) -> UploadRequest:
    async def replay() -> AsyncGenerator[bytes, None]:
        yield body

    try:
        form = await MultiPartParser(request.headers, replay(), max_files=1, max_fields=16).parse()
    except MultiPartException as exc:
        raise RasstError(
            ErrorCode.VALIDATION_FAILED, f"bad multipart body: {exc.message}"
        ) from None
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise RasstError(ErrorCode.VALIDATION_FAILED, "multipart field 'file' is required")
        data = await file.read()

        def field(name: str) -> str | None:
            value = form.get(name)
            return value.strip() or None if isinstance(value, str) else None

        return UploadRequest(
            data=data,
            filename=file.filename,
            name=field("name"),
            format=field("format"),
            source_language=field("source_language"),
            target_language=field("target_language"),
        )
    finally:
        await form.close()


@dataclass(frozen=True, slots=True)
class ExtractForm:
    uploads: tuple[UploadedDocument, ...]
    languages: tuple[str, ...]
    max_terms: int
    use_llm: bool | None
    save: bool
    name: str | None


async def read_extract_form(
    request: Request, limits: ExtractionLimits, max_name_chars: int
) -> ExtractForm:
    """The multipart form of an extraction, streamed (files beyond 1 MiB spool to disk)."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "multipart/form-data":
        raise RasstError(
            ErrorCode.UNSUPPORTED_FORMAT,
            "send multipart/form-data with one or more 'file' fields",
        )
    cap = limits.max_files * limits.max_file_bytes + _MULTIPART_OVERHEAD
    too_large = RasstError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"the upload is larger than {limits.max_files} files of {limits.max_file_bytes} bytes",
        detail={"file": None, "reason": "request_too_large"},
    )
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise too_large

    async def bounded() -> AsyncGenerator[bytes, None]:
        received = 0
        async for chunk in body_chunks(request):
            received += len(chunk)
            if received > cap:
                raise too_large
            yield chunk

    try:
        form = await MultiPartParser(
            request.headers, bounded(), max_files=limits.max_files, max_fields=32
        ).parse()
    except MultiPartException as exc:
        if exc.message.startswith("Too many files"):
            raise RasstError(
                ErrorCode.LIMIT_EXCEEDED,
                f"at most {limits.max_files} files per request",
                detail={"file": None, "reason": "too_many_files"},
            ) from None
        raise RasstError(
            ErrorCode.VALIDATION_FAILED, f"bad multipart body: {exc.message}"
        ) from None
    try:
        uploads: list[UploadedDocument] = []
        for key, value in form.multi_items():
            if key != "file" or not isinstance(value, UploadFile):
                continue
            too_big = value.size is not None and value.size > limits.max_file_bytes
            data = b"" if too_big else await value.read(limits.max_file_bytes + 1)
            if too_big or len(data) > limits.max_file_bytes:
                raise RasstError(
                    ErrorCode.PAYLOAD_TOO_LARGE,
                    f"{value.filename or 'a file'} is larger than the "
                    f"{limits.max_file_bytes}-byte limit",
                    detail={"file": value.filename, "reason": "file_too_large"},
                )
            uploads.append(UploadedDocument(value.filename or f"file-{len(uploads) + 1}", data))
        if not uploads:
            raise RasstError(
                ErrorCode.VALIDATION_FAILED, "multipart field 'file' is required (one or more)"
            )
        fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        name = normalise_text(fields.get("name", "")) or None
        if name is not None and len(name) > max_name_chars:
            raise RasstError(
                ErrorCode.VALIDATION_FAILED, f"name longer than {max_name_chars} characters"
            )
        return ExtractForm(
            uploads=tuple(uploads),
            languages=_draft_languages(
                [v for k, v in form.multi_items() if k in ("langs", "lang") and isinstance(v, str)]
            ),
            max_terms=_int_field(
                fields.get("max_terms"), "max_terms", DEFAULT_MAX_TERMS, MAX_TERMS
            ),
            use_llm=_bool_field(fields.get("use_llm"), "use_llm"),
            save=bool(_bool_field(fields.get("save"), "save")),
            name=name,
        )
    finally:
        await form.close()


def _draft_languages(values: list[str]) -> tuple[str, ...]:
    languages: dict[str, None] = {}
    for value in values:
        for raw in value.split(","):
            if not raw.strip():
                continue
            code = canonical_language(raw)
            if code is None:
                raise RasstError(
                    ErrorCode.VALIDATION_FAILED, f"langs: {raw.strip()!r} is not a language code"
                )
            languages[code] = None
    if len(languages) > _MAX_DRAFT_LANGUAGES:
        raise RasstError(
            ErrorCode.LIMIT_EXCEEDED,
            f"at most {_MAX_DRAFT_LANGUAGES} target languages",
            detail={"file": None, "reason": "too_many_languages"},
        )
    return tuple(languages)


def _int_field(value: str | None, name: str, default: int, maximum: int) -> int:
    if value is None or not value.strip():
        return default
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:
        raise RasstError(
            ErrorCode.VALIDATION_FAILED, f"{name}: expected an integer from 1 to {maximum}"
        )
    return int(text)


def _bool_field(value: str | None, name: str) -> bool | None:
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise RasstError(ErrorCode.VALIDATION_FAILED, f"{name}: expected true or false")
