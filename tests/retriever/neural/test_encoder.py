"""The neural encoders behind the retriever protocols: streams, term index, MaxSim search, batching."""

from __future__ import annotations

from tests.retriever.neural.support import require_neural_stack

require_neural_stack()

import asyncio  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from retriever.chunk_retriever import ChunkRetriever  # noqa: E402
from retriever.encoders import MultiVectorSpeechStream, SpeechEncoder, SpeechStream, TermEncoder  # noqa: E402
from retriever.index import IndexManager, IndexParams, TermIndex  # noqa: E402
from retriever.neural.batcher import BatcherClosed, MicroBatcher  # noqa: E402
from retriever.neural.config import BatchingParams, NeuralServingParams  # noqa: E402
from retriever.neural.encoder import NeuralEncoders, load_neural_encoders  # noqa: E402
from retriever.neural.search import merge_grouped, search_grouped  # noqa: E402
from retriever.windows import Window, WindowSchedule  # noqa: E402
from tests.retriever.helpers import snapshot  # noqa: E402
from tests.retriever.neural.support import tiny_build_kwargs, tiny_config, tone  # noqa: E402

TERMS = ["contrastive learning", "bleu score", "speech model", "term data", "the model"]


def _encoders(pooling: str, window_seconds: float = 0.005, max_batch: int = 64) -> NeuralEncoders:
    params = NeuralServingParams(
        model=tiny_config(pooling=pooling), batching=BatchingParams(window_seconds, max_batch)
    )
    return load_neural_encoders(params, **tiny_build_kwargs(TERMS))


@pytest.fixture(scope="module")
def maxsim() -> NeuralEncoders:
    enc = _encoders("maxsim")
    yield enc  # type: ignore[misc]
    enc.close()


def _pcm(seconds: float, seed: int = 0) -> np.ndarray:
    return (tone(300 + 100 * seed, seconds, seed=seed) * 20000).astype(np.int16)


def test_protocols_are_implemented(maxsim: NeuralEncoders) -> None:
    assert isinstance(maxsim.speech, SpeechEncoder) and isinstance(maxsim.terms, TermEncoder)
    stream = maxsim.speech.open_stream()
    assert isinstance(stream, SpeechStream) and isinstance(stream, MultiVectorSpeechStream)
    assert maxsim.speech.encoder_id == maxsim.terms.encoder_id and maxsim.speech.dim == 32


def test_stream_encodes_windows_once_and_keeps_bounded_audio(maxsim: NeuralEncoders) -> None:
    stream = maxsim.speech.open_stream()
    schedule = WindowSchedule()
    start = 0
    before = maxsim.speech.stats.items
    encoded = 0
    for i in range(20):  # 19.2 s in 0.96 s chunks: past the buffer capacity (16 s)
        pcm = _pcm(0.96, seed=i)
        stream.push(pcm)
        windows = schedule.windows_for_chunk(start, start + len(pcm))
        start += len(pcm)
        single = stream.encode(windows)
        multi = stream.encode_multi(windows)  # same windows: no second forward pass
        encoded += len(windows)
        assert single.shape == (len(windows), 32)
        np.testing.assert_allclose(np.linalg.norm(single, axis=1), 1.0, rtol=1e-5)
        assert multi.vectors.shape[1] == 32 and set(multi.owners.tolist()) == set(
            range(len(windows))
        )
    assert maxsim.speech.stats.items - before == encoded
    assert stream.end == start and stream._len <= 2 * 8 * 16000  # noqa: SLF001
    with pytest.raises(ValueError, match="outside the kept audio"):
        stream.encode([Window(160, 30880)])


def test_maxsim_through_faiss_equals_brute_force(maxsim: NeuralEncoders) -> None:
    snap = snapshot(TERMS)
    vectors = maxsim.terms.encode_terms(TERMS)
    index = TermIndex.build(snap, maxsim.terms.encoder_id, vectors, IndexParams(use_gpu=False))
    stream = maxsim.speech.open_stream()
    stream.push(_pcm(3.0, seed=3))
    windows = [Window(0, 30720), Window(7680, 38400), Window(16000, 48000)]
    multi = stream.encode_multi(windows)
    for k in (1, 3, len(TERMS)):
        found = search_grouped(index, multi, len(windows), k)
        for w in range(len(windows)):
            rows = multi.vectors[multi.owners == w]
            brute = (rows @ vectors.vectors.T).max(axis=0)
            order = np.argsort(-brute, kind="stable")[:k]
            np.testing.assert_allclose(found.scores[w], brute[order], rtol=1e-5, atol=1e-6)
            assert set(found.term_ids[w].tolist()) == set(order.tolist())


def test_merge_grouped_keeps_the_best_score_per_term() -> None:
    ids = np.array([[3, 1], [1, 2], [5, -1]])
    scores = np.array([[0.9, 0.2], [0.8, 0.7], [0.4, -np.inf]], dtype=np.float32)
    got_ids, got_scores = merge_grouped(ids, scores, np.array([0, 0, 1]), 3, 3)
    assert got_ids.tolist() == [[3, 1, 2], [5, -1, -1], [-1, -1, -1]]
    np.testing.assert_allclose(got_scores[0], [0.9, 0.8, 0.7])


def test_chunk_retriever_runs_on_the_neural_encoder() -> None:
    enc = _encoders("attention")
    try:
        manager = IndexManager(enc.terms, IndexParams(use_gpu=False))
        manager.update(snapshot(TERMS)).result(timeout=60)
        retriever = ChunkRetriever(enc.speech.open_stream(), manager, ["g"], ["de"])
        start = 0
        for i in range(4):
            pcm = _pcm(0.96, seed=i)
            hits = retriever.process(i, start, pcm, final=i == 3)
            start += len(pcm)
            assert len(hits.hits) <= 10 and all(h.source in TERMS for h in hits.hits)
        manager.close()
    finally:
        enc.close()


def test_concurrent_sessions_share_forward_passes() -> None:
    """Sixteen sessions in worker threads: their windows are batched across sessions."""
    enc = _encoders("maxsim", window_seconds=0.02, max_batch=64)
    try:
        schedule = WindowSchedule()
        barrier = threading.Barrier(16)

        def session(seed: int) -> int:
            stream = enc.speech.open_stream()
            start = 0
            for i in range(3):
                pcm = _pcm(0.96, seed=seed + i)
                stream.push(pcm)
                windows = schedule.windows_for_chunk(start, start + len(pcm))
                start += len(pcm)
                barrier.wait()  # chunks of all sessions arrive together, as in real time
                stream.encode_multi(windows)
            return start

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(session, range(16)))
        stats = enc.speech.stats
        assert stats.max_batch > 1
        assert stats.batches < stats.items / 2  # most windows rode with others
    finally:
        enc.close()


def test_batcher_from_the_event_loop_and_errors_reach_every_caller() -> None:
    seen: list[int] = []

    def forward(items: list[int]) -> list[int]:
        seen.append(len(items))
        if any(i < 0 for i in items):
            raise RuntimeError("bad item")
        time.sleep(0.01)
        return [i * 2 for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(forward, window_seconds=0.02, max_batch=8)

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(batcher.run([i, i + 100]) for i in range(6)))

    results = asyncio.run(main())
    assert results == [[2 * i, 2 * (i + 100)] for i in range(6)]
    assert max(seen) > 2 and all(n <= 8 for n in seen)
    good, bad = batcher.submit([1]), batcher.submit([-1])
    with pytest.raises(RuntimeError, match="bad item"):
        bad.result(timeout=5)
    if seen[-1] == 2:  # they shared the batch: the good one failed with it
        with pytest.raises(RuntimeError):
            good.result(timeout=5)
    batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit([1]).result(timeout=5)
