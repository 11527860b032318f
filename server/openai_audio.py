"""``POST /v1/audio/transcriptions``: OpenAI's transcription call, served by a batch job.

The form fields are OpenAI's (``file``, ``model``, ``language``, ``response_format``:
json, text, srt, verbose_json or vtt; ``stream``); ``model``, ``prompt`` and
``temperature`` are accepted and ignored. RASST's extensions, also form fields:
``target_language`` (repeatable: translations), ``glossary`` (repeatable: term
retrieval), ``subtitle_language`` (the language of text/srt/vtt output; default the
first target language, else the source) and ``lm``. JSON answers carry the extras
under ``rasst``: translations per language, terms, the session id.

``stream=true`` answers with server-sent events as OpenAI's streaming transcription
does (``transcript.text.delta`` as captions or translations come, then ``transcript.text.done``) plus
``rasst.progress`` events (audio seconds processed of the total), which
``rasst subtitles FILE`` turns into its progress bar; the done event also carries the
rendered ``subtitles`` when ``response_format`` is srt or vtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import Send

from glossary.auth import key_from_headers
from glossary.router import TenantDep
from kernel.errors import ErrorCode, RasstError, error_body
from server.batch import BatchRequest, BatchResult, decode_wav, run_batch
from server.routes import ServicesDep
from server.subtitles import UnknownLanguage, cues_for, render

router = APIRouter(tags=["batch"])
_KEEPALIVE_SECONDS = 5.0

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
# ISO-639-1 names OpenAI reports in verbose_json's ``language``.
_LANGUAGE_NAMES = {"en": "english", "de": "german", "zh": "chinese", "ja": "japanese"}


@router.post(
    "/v1/audio/transcriptions",
    responses={
        200: {"description": "Transcript (and translations) in the requested format."},
        415: {"description": "The file is not a 16-bit PCM WAV file"},
        422: {"description": "Invalid fields, or translations asked of a server without one"},
    },
)
async def transcriptions(
    request: Request,
    services: ServicesDep,
    # Checked before the upload is read: an anonymous call gets 401, not a validation error.
    tenant: TenantDep,
    file: Annotated[UploadFile, File(description="A 16-bit PCM WAV recording.")],
    model: Annotated[str, Form()] = "rasst",
    language: Annotated[str | None, Form(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = None,
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float | None, Form()] = None,
    stream: Annotated[bool, Form()] = False,
    target_language: Annotated[list[str] | None, Form()] = None,
    glossary: Annotated[list[str] | None, Form()] = None,
    # OpenAI's client sends a list field as ``name[]`` (its multipart array format).
    target_language_brackets: Annotated[list[str] | None, Form(alias="target_language[]")] = None,
    glossary_brackets: Annotated[list[str] | None, Form(alias="glossary[]")] = None,
    subtitle_language: Annotated[str | None, Form()] = None,
    lm: Annotated[int, Form(ge=1, le=4)] = 2,
) -> Response:
    """Transcribe (and translate) a recording, faster than real time."""
    # Parsing and resampling a long recording takes a while: off the event loop.
    audio = await asyncio.to_thread(decode_wav, await file.read())
    client = request.client
    batch = BatchRequest(
        audio=audio,
        source_language=(language or "en").split("-")[0],
        target_languages=(*(target_language or ()), *(target_language_brackets or ())),
        glossary_ids=(*(glossary or ()), *(glossary_brackets or ())),
        lm=lm,
        api_key=key_from_headers(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        ),
        client_host=client.host if client else None,
    )
    output_lang = subtitle_language or (
        batch.target_languages[0] if batch.target_languages else None
    )
    if stream:
        return _ClosingStreamingResponse(
            _sse(services, batch, response_format, output_lang),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    result = await run_batch(services, batch)
    return _answer(result, response_format, output_lang, batch.source_language)


def _answer(result: BatchResult, fmt: str, lang: str | None, source: str) -> Response:
    if fmt in ("srt", "vtt"):
        media = "text/plain" if fmt == "srt" else "text/vtt"
        return PlainTextResponse(_subtitles(result, fmt, lang), media_type=media)
    if fmt == "text":
        return PlainTextResponse(_text(result, lang) + "\n")
    body: dict[str, Any] = {"text": _text(result, None)}
    if fmt == "verbose_json":
        body.update(
            task="transcribe",
            language=_LANGUAGE_NAMES.get(source, source),
            duration=result.summary["audio_seconds"],
            segments=_segments(result),
            words=[w for s in _finals(result) for w in s.get("words", [])],
        )
    body["rasst"] = _extras(result)
    return JSONResponse(body)


def _finals(result: BatchResult) -> list[dict[str, Any]]:
    return [e for e in result.events if e["type"] == "caption" and e["final"] and e["text"]]


def _commits(result: BatchResult, lang: str) -> list[dict[str, Any]]:
    return [
        e
        for e in result.events
        if e["type"] == "translation.commit" and e["lang"] == lang and e["text"]
    ]


def _text(result: BatchResult, lang: str | None) -> str:
    if lang is not None and any(
        e["type"] == "session.started" and lang in e["target_languages"] for e in result.events
    ):
        return " ".join(e["text"].strip() for e in _commits(result, lang))
    return " ".join(e["text"].strip() for e in _finals(result))


def _segments(result: BatchResult) -> list[dict[str, Any]]:
    return [
        {
            "id": n,
            "seek": 0,
            "start": e["start"],
            "end": e["end"],
            "text": e["text"],
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": 0.0,
            "compression_ratio": 1.0,
            "no_speech_prob": 0.0,
        }
        for n, e in enumerate(_finals(result))
    ]


def _extras(result: BatchResult) -> dict[str, Any]:
    started = next(e for e in result.events if e["type"] == "session.started")
    terms = [
        {**t, "chunk": e["chunk"]}
        for e in result.events
        if e["type"] == "terms"
        for t in e["terms"]
    ]
    return {
        "session_id": result.session_id,
        "translations": {
            lang: {
                "text": _text(result, lang),
                "segments": [
                    {"start": c["start"], "end": c["end"], "text": c["text"]}
                    for c in _commits(result, lang)
                ],
            }
            for lang in started["target_languages"]
        },
        "terms": terms,
        "warnings": [e for e in result.events if e["type"] == "warning"],
        "wall_seconds": result.summary["wall_seconds"],
    }


def _subtitles(result: BatchResult, fmt: str, lang: str | None) -> str:
    try:
        cues = cues_for(result.events, lang)
    except UnknownLanguage as exc:
        raise RasstError(ErrorCode.BAD_REQUEST, str(exc)) from None
    return render(cues, "srt" if fmt == "srt" else "vtt")


async def _sse(
    services: Any, batch: BatchRequest, fmt: str, lang: str | None
) -> AsyncIterator[bytes]:
    """Progress and text deltas while the job runs, then the done event (or an error event)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    delta_lang = lang if lang in batch.target_languages else None

    def on_progress(done: float, total: float) -> None:
        queue.put_nowait({"type": "rasst.progress", "seconds": done, "total_seconds": total})

    def on_event(event: dict[str, Any]) -> None:
        if delta_lang is None:
            text = event["text"] if event["type"] == "caption" and event["final"] else ""
        else:
            is_commit = event["type"] == "translation.commit" and event["lang"] == delta_lang
            text = event["text"] if is_commit else ""
        if text.strip():
            queue.put_nowait({"type": "transcript.text.delta", "delta": text.strip() + " "})

    job = asyncio.create_task(run_batch(services, batch, on_progress, on_event))
    try:
        while not job.done() or not queue.empty():
            if not queue.empty():
                yield _event(queue.get_nowait())
                continue
            getter = asyncio.ensure_future(queue.get())
            try:
                done, _ = await asyncio.wait(
                    {job, getter}, timeout=_KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                if not getter.done():
                    getter.cancel()
            if getter in done:
                yield _event(getter.result())
            elif not done:
                # A slow stage: an SSE comment keeps proxies from timing the answer out and
                # finds a client that has gone (the send fails, the job is cancelled).
                yield b": keep-alive\n\n"
        try:
            result = job.result()
        except RasstError as exc:
            yield _event({"type": "error", **error_body(exc.code, exc.message, exc.detail)})
            return
        done_event: dict[str, Any] = {
            "type": "transcript.text.done",
            "text": _text(result, lang),
            "rasst": _extras(result),
        }
        if fmt in ("srt", "vtt"):
            try:
                done_event["rasst"]["subtitles"] = _subtitles(result, fmt, lang)
            except RasstError as exc:
                yield _event({"type": "error", **error_body(exc.code, exc.message, exc.detail)})
                return
        yield _event(done_event)
    finally:
        if not job.done():
            # The client hung up: the batch session ends as disconnected.
            job.cancel()
            with contextlib.suppress(BaseException):
                await job


class _ClosingStreamingResponse(StreamingResponse):
    """Closes its generator when the client goes, so the batch job is cancelled at once.

    Starlette stops iterating when a send fails but leaves the generator open; its
    ``finally`` (which cancels the job) would run only when it is garbage collected.
    """

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()
