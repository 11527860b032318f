"""Speech worker processes: where the per-session front ends run.

Each worker process loads the Whisper model once (one CPU thread: processes,
not threads, give the parallelism, and one worker per core keeps the cores
busy without oversubscribing them) and hosts the front ends of the sessions
placed on it (sticky: a session's utterance state lives in exactly one
worker; new sessions go to the least-loaded worker). A session's own state
there is a VAD and one utterance buffer, freed when it closes.

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
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from kernel.frames import AudioSlice, ChunkAnalysis
from server.asr.front_end import FrontEndParams, SliceIn, SpeechFrontEnd, default_vad_factory
from server.asr.models import AsrModelParams, load_model
from server.asr.recognizer import DecodeParams, WhisperRecognizer

log = logging.getLogger(__name__)

# -- inside a worker process ---------------------------------------------------
# Module state here belongs to one worker process (one executor, one thread), not
# to the gateway: the gateway never imports these names for their values.

_params: FrontEndParams | None = None
_recognizer: WhisperRecognizer | None = None
_sessions: dict[str, SpeechFrontEnd] = {}


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


def _worker_init(params: FrontEndParams, model: AsrModelParams, decode: DecodeParams) -> None:
    global _params, _recognizer
    exit_with_parent()
    _params = params
    if params.captions:
        _recognizer = WhisperRecognizer(load_model(model), decode)


def _worker_ping() -> int:
    return os.getpid()


def _worker_open(session_id: str, hotwords: str) -> None:
    assert _params is not None
    front_end = SpeechFrontEnd(_params, default_vad_factory(), _recognizer)
    front_end.set_hotwords(hotwords)
    _sessions[session_id] = front_end


def _worker_process(
    session_id: str, slices: Sequence[SliceIn], partial: bool
) -> list[ChunkAnalysis]:
    return _sessions[session_id].process(slices, partial)


def _worker_set_hotwords(session_id: str, hotwords: str) -> None:
    front_end = _sessions.get(session_id)
    if front_end is not None:
        front_end.set_hotwords(hotwords)


def _worker_close(session_id: str) -> None:
    _sessions.pop(session_id, None)


# -- in the gateway ----------------------------------------------------------------


class SpeechWorkerLost(RuntimeError):
    """The worker process hosting a session's front end died."""


@dataclass(eq=False)
class _Worker:
    executor: ProcessPoolExecutor
    sessions: set[str] = field(default_factory=set)
    broken: bool = False
    # Calls submitted and not yet answered (all sessions on this worker).
    pending: int = 0


@dataclass(frozen=True, slots=True)
class SpeechWorkerParams:
    workers: int
    front_end: FrontEndParams
    model: AsrModelParams = field(default_factory=AsrModelParams)
    decode: DecodeParams = field(default_factory=DecodeParams)


class SpeechWorkers:
    """A fixed set of worker processes hosting the sessions' speech front ends."""

    def __init__(self, params: SpeechWorkerParams) -> None:
        self._params = params
        self._workers: list[_Worker] = []
        self._context = multiprocessing.get_context("spawn")

    def _new_worker(self) -> _Worker:
        executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=self._context,
            initializer=_worker_init,
            initargs=(self._params.front_end, self._params.model, self._params.decode),
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

    async def open(self, session_id: str, hotwords: str = "") -> SpeechSession:
        worker = self._least_loaded()
        worker.sessions.add(session_id)
        session = SpeechSession(self, worker, session_id, hotwords)
        await session._call(_worker_open, session_id, hotwords)
        return session

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

    def __init__(
        self, pool: SpeechWorkers, worker: _Worker, session_id: str, hotwords: str
    ) -> None:
        self._pool = pool
        self._worker = worker
        self._session_id = session_id
        # Kept across worker loss, for the front end that replaces the lost one.
        self._hotwords = hotwords

    async def _call(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        worker = self._worker
        worker.pending += 1
        try:
            return await loop.run_in_executor(worker.executor, fn, *args)
        except BrokenProcessPool as exc:
            self._pool._replace(self._worker)
            raise SpeechWorkerLost("speech worker died") from exc
        except RuntimeError as exc:
            # Submitting to an executor that another session already found broken.
            if not self._worker.broken:
                raise
            raise SpeechWorkerLost("speech worker died") from exc
        finally:
            worker.pending -= 1

    async def process(self, slices: Sequence[AudioSlice], partial: bool) -> list[ChunkAnalysis]:
        """One analysis per slice; ``partial``: a revisable caption decode after the last.

        The revisable decode is skipped while other sessions' audio waits for this
        worker: final captions of every session come first, whatever the load.
        """
        partial = partial and self._worker.pending == 0
        pieces = [SliceIn(s.chunk_index, s.start_sample, s.pcm, s.final) for s in slices]
        result: list[ChunkAnalysis] = await self._call(
            _worker_process, self._session_id, pieces, partial
        )
        return result

    async def set_hotwords(self, hotwords: str) -> None:
        """Bias recognition toward these glossary terms from the next decode on."""
        self._hotwords = hotwords
        await self._call(_worker_set_hotwords, self._session_id, hotwords)

    async def reopen(self) -> None:
        """After a SpeechWorkerLost: continue on a live worker with a fresh front end."""
        self._worker.sessions.discard(self._session_id)
        self._worker = self._pool._least_loaded()
        self._worker.sessions.add(self._session_id)
        await self._call(_worker_open, self._session_id, self._hotwords)

    async def aclose(self) -> None:
        self._worker.sessions.discard(self._session_id)
        if self._worker.broken:
            return
        with contextlib.suppress(SpeechWorkerLost):
            await self._call(_worker_close, self._session_id)
