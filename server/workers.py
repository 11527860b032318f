"""Speech worker processes: where the per-session front ends run.

pocketsphinx holds the GIL while it decodes, so threads would serialise every
session on one core. Each worker is a single-process executor (sticky: a
session's decoder state lives in exactly one worker) and sessions are placed on
the least-loaded worker. Decoders are expensive to build (~0.3 s, ~90 MB), so a
worker keeps idle ones for the next session instead of rebuilding them.

A worker that dies is replaced; its sessions get ``SpeechWorkerLost`` and
re-open on a live worker (they lose only the utterance in progress).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retriever.biased_lm import LanguageModelSpec
from server.frames import AudioChunk, ChunkAnalysis
from server.speech import (
    FrontEndParams,
    SpeechFrontEnd,
    default_decoder_factory,
    default_vad_factory,
)

log = logging.getLogger(__name__)

# -- inside a worker process ---------------------------------------------------
# Module state here belongs to one worker process (one executor, one thread), not
# to the gateway: the gateway never imports these names for their values.

_params: FrontEndParams | None = None
_sessions: dict[str, SpeechFrontEnd] = {}
_idle_decoders: list[Any] = []


def exit_with_parent() -> None:
    """Exit when the gateway process dies, even by SIGKILL: never leave orphans behind.

    An executor initializer for every worker process the gateway spawns.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_init(params: FrontEndParams, warm_decoders: int) -> None:
    global _params
    exit_with_parent()
    _params = params
    if params.captions:
        _idle_decoders.extend(default_decoder_factory() for _ in range(warm_decoders))


def _worker_ping() -> int:
    return os.getpid()


def _worker_open(session_id: str) -> None:
    assert _params is not None
    decoder = None
    if _params.captions:
        decoder = _idle_decoders.pop() if _idle_decoders else default_decoder_factory()
    _sessions[session_id] = SpeechFrontEnd(_params, default_vad_factory(), decoder)


def _worker_process(
    session_id: str, index: int, start_sample: int, pcm: np.ndarray, final: bool
) -> ChunkAnalysis:
    return _sessions[session_id].process(index, start_sample, pcm, final)


def _worker_set_lm(session_id: str, spec: LanguageModelSpec | None) -> str:
    front_end = _sessions.get(session_id)
    if front_end is None:
        return ""
    front_end.set_language_model(spec)
    return front_end.language_model


def _worker_close(session_id: str, keep_decoder: int) -> None:
    front_end = _sessions.pop(session_id, None)
    if front_end is None:
        return
    decoder = front_end.release_decoder()
    if decoder is not None and len(_idle_decoders) < keep_decoder:
        _idle_decoders.append(decoder)


# -- in the gateway ----------------------------------------------------------------


class SpeechWorkerLost(RuntimeError):
    """The worker process hosting a session's front end died."""


@dataclass(eq=False)
class _Worker:
    executor: ProcessPoolExecutor
    sessions: set[str] = field(default_factory=set)
    broken: bool = False


@dataclass(frozen=True, slots=True)
class SpeechWorkerParams:
    workers: int
    front_end: FrontEndParams
    warm_decoders: int = 2
    # Idle decoders a worker keeps for reuse (memory ~90 MB each).
    keep_decoders: int = 8


class SpeechWorkers:
    """A fixed set of worker processes hosting the sessions' speech front ends."""

    def __init__(self, params: SpeechWorkerParams) -> None:
        self._params = params
        self._workers: list[_Worker] = []
        self._context = multiprocessing.get_context("spawn")
        # Open sessions by id, for stages that steer a session's decoder (the retriever).
        self._sessions: dict[str, SpeechSession] = {}

    def _new_worker(self) -> _Worker:
        executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=self._context,
            initializer=_worker_init,
            initargs=(self._params.front_end, self._params.warm_decoders),
        )
        return _Worker(executor)

    async def start(self) -> None:
        self._workers = [self._new_worker() for _ in range(self._params.workers)]
        loop = asyncio.get_running_loop()
        # Fail start-up, not the first session, if a worker cannot come up.
        await asyncio.gather(
            *(loop.run_in_executor(w.executor, _worker_ping) for w in self._workers)
        )

    async def ready(self) -> bool:
        return bool(self._workers) and not any(w.broken for w in self._workers)

    def close(self) -> None:
        for worker in self._workers:
            worker.executor.shutdown(wait=True, cancel_futures=True)
        self._workers = []

    async def open(self, session_id: str) -> SpeechSession:
        worker = self._least_loaded()
        worker.sessions.add(session_id)
        session = SpeechSession(self, worker, session_id)
        await session._call(_worker_open, session_id)
        self._sessions[session_id] = session
        return session

    def session(self, session_id: str) -> SpeechSession | None:
        """The open speech session with this id, if any."""
        return self._sessions.get(session_id)

    def _least_loaded(self) -> _Worker:
        live = [w for w in self._workers if not w.broken]
        if not live:
            raise SpeechWorkerLost("no speech worker is running")
        return min(live, key=lambda w: len(w.sessions))

    def _replace(self, worker: _Worker) -> None:
        """Swap a dead worker for a fresh one (once, whoever notices first)."""
        if worker.broken:
            return
        worker.broken = True
        worker.executor.shutdown(wait=False, cancel_futures=True)
        if worker in self._workers:
            index = self._workers.index(worker)
            self._workers[index] = self._new_worker()
            log.warning("speech worker died; replaced it", extra={"sessions": len(worker.sessions)})


class SpeechSession:
    """A session's handle on its front end inside a worker process."""

    def __init__(self, pool: SpeechWorkers, worker: _Worker, session_id: str) -> None:
        self._pool = pool
        self._worker = worker
        self._session_id = session_id
        # The language model the session should decode with (kept across worker loss).
        self._language_model: LanguageModelSpec | None = None

    async def _call(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._worker.executor, fn, *args)
        except BrokenProcessPool as exc:
            self._pool._replace(self._worker)
            raise SpeechWorkerLost("speech worker died") from exc
        except RuntimeError as exc:
            # Submitting to an executor that another session already found broken.
            if not self._worker.broken:
                raise
            raise SpeechWorkerLost("speech worker died") from exc

    async def process(self, chunk: AudioChunk) -> ChunkAnalysis:
        return await self._call(
            _worker_process,
            self._session_id,
            chunk.index,
            chunk.start_sample,
            chunk.pcm,
            chunk.final,
        )

    async def set_language_model(self, spec: LanguageModelSpec | None) -> str:
        """Decode with ``spec`` (None: the default LM) from the next utterance on.

        Returns the name of the search active now ("" = default). Runs in the
        session's worker between two chunks, so it never races the decoding.
        """
        self._language_model = spec
        return str(await self._call(_worker_set_lm, self._session_id, spec))

    async def reopen(self) -> None:
        """After a SpeechWorkerLost: continue on a live worker with a fresh front end."""
        self._worker.sessions.discard(self._session_id)
        self._worker = self._pool._least_loaded()
        self._worker.sessions.add(self._session_id)
        await self._call(_worker_open, self._session_id)
        if self._language_model is not None:
            await self._call(_worker_set_lm, self._session_id, self._language_model)

    async def aclose(self) -> None:
        self._pool._sessions.pop(self._session_id, None)
        self._worker.sessions.discard(self._session_id)
        if self._worker.broken:
            return
        with contextlib.suppress(SpeechWorkerLost):
            await self._call(_worker_close, self._session_id, self._pool._params.keep_decoders)
