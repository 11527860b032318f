"""The retriever HTTP service: ``python -m retriever.service`` or ``rasst retriever serve``.

A small FastAPI app over :class:`retriever.engine.RetrievalEngine` (the only
module of ``retriever/`` that imports FastAPI). The gateway calls it in the
compose deployment; the embedded default runs the same engine code in process.

* ``POST /v1/retrieve``: body = the chunk's PCM (s16le, 16 kHz mono), header
  ``X-Rasst-Query`` = :class:`retriever.wire.RetrieveQuery` as JSON → 200
  :class:`retriever.wire.RetrieveResult`, or 409 :class:`retriever.wire.MissingGlossaries`.
* ``PUT /v1/glossaries/{id}/versions/{version}``: upload a snapshot (JSON).
* ``DELETE /v1/sessions/{id}``: forget a session's state (also dropped when idle).
* ``GET /healthz``, ``GET /v1/stats`` (batching counters; with the neural
  encoder also its forward passes and the inputs they encoded: one span per
  chunk by default, or the 1.92 s windows).

Concurrent retrieve calls are batched (:class:`retriever.engine.RequestBatcher`).
The encoder is chosen by configuration (``RASST_RETRIEVER_ENCODER``, see
:mod:`retriever.encoder_factory`): the embedded phonetic one by default, or
the neural dual encoder, loaded once at start-up.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from kernel.errors import ErrorCode, RasstError
from kernel.http_errors import install_error_handlers
from retriever.aggregate import AggregationParams
from retriever.encoder_factory import EncoderParams, build_encoders
from retriever.engine import EngineParams, RequestBatcher, RetrievalEngine
from retriever.wire import (
    GlossaryUpload,
    MissingGlossaries,
    RetrieveQuery,
    RetrieveResult,
)
from retriever.word_evidence import WordRetrievalParams, warm_up

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16_000 * 2 * 8  # 8 s of audio: chunks are at most 3.84 s


@dataclass(frozen=True, slots=True)
class ServiceParams:
    cache_dir: Path | None = None
    batch_window_seconds: float = 0.005
    max_batch: int = 32
    candidates: int = 100
    index_wait_seconds: float = 1.0
    encoder: EncoderParams = field(default_factory=EncoderParams)


def create_service_app(params: ServiceParams | None = None) -> FastAPI:
    params = params or ServiceParams()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if params.encoder.kind == "phonetic":
            # Healthy once the dictionary is loaded (~2 s). Letter-to-sound (~15 s of
            # GIL-holding training) waits until an out-of-vocabulary term needs it.
            await asyncio.to_thread(warm_up, False)
        # Loading the neural models blocks for seconds to minutes: off the loop,
        # and before /healthz answers, so a load error stops the service at start.
        encoders = await asyncio.to_thread(build_encoders, params.encoder)
        log.info("retriever encoder: %s (%s)", encoders.kind, encoders.terms.encoder_id)
        engine = RetrievalEngine(
            EngineParams(
                retrieval=WordRetrievalParams(AggregationParams(), candidates=params.candidates),
                cache_dir=params.cache_dir,
                # Below the gateway's read timeout: a slow build means no terms, not an error.
                index_wait_seconds=params.index_wait_seconds,
            ),
            encoders,
        )
        batcher = RequestBatcher(engine, params.batch_window_seconds, params.max_batch)
        batcher.start()
        app.state.engine = engine
        app.state.batcher = batcher
        try:
            yield
        finally:
            await batcher.aclose()
            # Joins the model batcher and index threads: off the loop.
            await asyncio.to_thread(engine.close)

    app = FastAPI(title="RASST retriever", lifespan=lifespan)
    install_error_handlers(app)
    _add_routes(app)
    return app


def _engine(request: Request) -> RetrievalEngine:
    engine: RetrievalEngine = request.app.state.engine
    return engine


def _batcher(request: Request) -> RequestBatcher:
    batcher: RequestBatcher = request.app.state.batcher
    return batcher


EngineDep = Annotated[RetrievalEngine, Depends(_engine)]
BatcherDep = Annotated[RequestBatcher, Depends(_batcher)]


def _add_routes(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/stats")
    async def stats(batcher: BatcherDep, engine: EngineDep) -> dict[str, int | str]:
        return {
            "encoder": engine.encoders.kind,
            "batches": batcher.batches,
            "requests": batcher.requests,
            "max_batch": batcher.max_seen,
            **engine.encoders.stats(),
        }

    @app.put("/v1/glossaries/{glossary_id}/versions/{version}", status_code=204)
    async def put_glossary(
        glossary_id: str, version: int, upload: GlossaryUpload, engine: EngineDep
    ) -> Response:
        engine.add_glossary(upload.snapshot(glossary_id, version))
        return Response(status_code=204)

    @app.delete("/v1/sessions/{session_id}", status_code=204)
    async def drop_session(session_id: str, engine: EngineDep) -> Response:
        engine.drop_session(session_id)
        return Response(status_code=204)

    @app.post("/v1/retrieve", response_model=RetrieveResult)
    async def retrieve(
        request: Request,
        batcher: BatcherDep,
        x_rasst_query: Annotated[str, Header()],
    ) -> JSONResponse:
        try:
            query = RetrieveQuery.model_validate(json.loads(x_rasst_query))
        except (ValueError, ValidationError) as exc:
            raise RasstError(ErrorCode.VALIDATION_FAILED, f"bad X-Rasst-Query: {exc}") from None
        body = await request.body()
        if len(body) % 2 or len(body) > MAX_BODY_BYTES:
            raise RasstError(
                ErrorCode.VALIDATION_FAILED, "the body must be whole s16le samples, at most 8 s"
            )
        # A copy the session's stream may keep (frombuffer alone is read-only).
        pcm = np.frombuffer(body, dtype="<i2").astype(np.int16)
        result, batch_size = await batcher.submit(query, len(pcm), pcm)
        if isinstance(result, MissingGlossaries):
            return JSONResponse(result.model_dump(), status_code=409)
        return JSONResponse(RetrieveResult.of(result, batch_size).model_dump())


def main() -> None:
    """``python -m retriever.service``: the same as ``rasst retriever serve``."""
    import sys

    from retriever.cli import retriever_app

    retriever_app(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    main()
