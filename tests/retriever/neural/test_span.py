"""Encode-once spans (the release's serving path) against an independent re-computation.

Per chunk ``[s, e)`` the release encodes ``[s − 1.92 s, e]`` once, pools the
projected frames at every MaxSim size, puts each sub-window on the timeline
(frame times scaled to the span's true length) and keeps those with
``end > s`` and ``start < e``; a term's score is its best kept sub-window,
then top-k and τ. The reference below recomputes that with plain loops.
"""

from __future__ import annotations

from tests.retriever.neural.support import require_neural_stack

require_neural_stack()

import threading  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from retriever.aggregate import AggregationParams  # noqa: E402
from retriever.chunk_retriever import ChunkRetriever  # noqa: E402
from retriever.encoders import SpanSpeechStream  # noqa: E402
from retriever.index import IndexManager, IndexParams  # noqa: E402
from retriever.neural.config import BatchingParams, NeuralServingParams  # noqa: E402
from retriever.neural.encoder import (  # noqa: E402
    NeuralEncoders,
    NeuralSpanStream,
    load_neural_encoders,
)
from retriever.neural.features import pcm16_to_float  # noqa: E402
from retriever.neural.speech import multiscale_pool, subwindow_frames  # noqa: E402
from tests.retriever.helpers import snapshot  # noqa: E402
from tests.retriever.neural.support import tiny_build_kwargs, tiny_config, tone  # noqa: E402

TERMS = ["contrastive learning", "bleu score", "speech model", "term data", "the model"]
RATE = 16_000
LOOKBACK = 30_720


def _encoders(windowing: str = "span", window_seconds: float = 0.005) -> NeuralEncoders:
    params = NeuralServingParams(
        model=tiny_config(pooling="maxsim"),
        batching=BatchingParams(window_seconds, 64),
        windowing=windowing,  # type: ignore[arg-type]
    )
    return load_neural_encoders(params, **tiny_build_kwargs(TERMS))


@pytest.fixture(scope="module")
def enc() -> NeuralEncoders:
    e = _encoders()
    yield e  # type: ignore[misc]
    e.close()


def _pcm(seconds: float, seed: int) -> np.ndarray:
    return (tone(250 + 120 * seed, seconds, seed=seed) * 20000).astype(np.int16)


def _reference(
    enc: NeuralEncoders, audio: np.ndarray, start: int, end: int
) -> list[tuple[float, float, np.ndarray]]:
    """Kept sub-windows of chunk [start, end) as (start s, end s, unit vector), loop by loop."""
    models = enc.speech.models
    config = models.config
    span_start = max(0, start - LOOKBACK)
    wave = pcm16_to_float(audio[span_start:end])
    mel = enc.speech.frontend([wave])[0]
    with torch.inference_mode():
        hidden, _, lengths = models.speech.frames(mel, torch.tensor([mel.shape[-1]]))
        projected = models.speech.projector(hidden)[0].float().numpy()
    t = int(lengths[0])
    rel: list[tuple[int, int]] = []
    for w in config.maxsim_windows:
        if w >= t:
            rel.append((0, t))
        else:
            rel.extend(
                (p * config.maxsim_stride, p * config.maxsim_stride + w)
                for p in range((t - w) // config.maxsim_stride + 1)
            )
    frame = 1 / 12.5
    nominal = max(e for _, e in rel) * frame
    duration = (end - span_start) / RATE
    scale = duration / nominal
    out = []
    for fs, fe in rel:
        a = span_start / RATE + fs * frame * scale
        b = span_start / RATE + fe * frame * scale
        if b > start / RATE and a < end / RATE:
            v = projected[fs:fe].mean(axis=0)
            out.append((a, b, v / np.linalg.norm(v)))
    return out


def test_subwindow_layout_matches_the_pooling_slots() -> None:
    windows, stride = (2, 3, 5, 8, 24), 2
    for length in (1, 2, 7, 24, 25, 36, 47):
        frames = torch.randn(1, 50, 4)
        _, valid = multiscale_pool(frames, torch.tensor([length]), windows, stride)
        starts, ends = subwindow_frames(length, windows, stride)
        assert int(valid.sum()) == len(starts) == len(ends)
        assert all(0 <= s < e <= length for s, e in zip(starts, ends, strict=True))
        # The release's rule: a size at least as long as the input pools the whole input.
        for w in windows:
            if w >= length:
                assert (0, length) in set(zip(starts, ends, strict=True))


def test_one_forward_pass_per_chunk_and_only_evidence_reaching_the_chunk(
    enc: NeuralEncoders,
) -> None:
    stream = enc.speech.open_stream()
    assert isinstance(stream, NeuralSpanStream) and isinstance(stream, SpanSpeechStream)
    audio = np.concatenate([_pcm(0.96, seed=i) for i in range(5)])
    chunk = 15_360
    before = enc.speech.stats.items
    for i in range(5):
        start, end = i * chunk, (i + 1) * chunk
        stream.push(audio[start:end])
        span = stream.encode_span(start, end)
        ref = _reference(enc, audio, start, end)
        # Same sub-windows, same vectors (rows of one window are interchangeable: compare sets).
        assert len(span.vectors.vectors) == len(ref)
        for window in span.windows:
            assert window.end > start and window.start >= max(0, start - LOOKBACK)
            assert window.end <= end
        got = sorted(map(tuple, np.round(span.vectors.vectors, 4)))
        want = sorted(tuple(np.round(v, 4)) for _, _, v in ref)
        np.testing.assert_allclose(np.array(got), np.array(want), atol=2e-4)
        for row, owner in enumerate(span.vectors.owners.tolist()):
            w = span.windows[owner]
            matches = [
                (a, b) for a, b, v in ref if np.allclose(v, span.vectors.vectors[row], atol=1e-4)
            ]
            assert any(
                abs(a - w.start / RATE) < 1e-3 and abs(b - w.end / RATE) < 1e-3 for a, b in matches
            )
        if i >= 2:
            # Windows crossing the chunk boundary stay; windows ending before it are gone.
            assert any(w.start < start for w in span.windows)
    assert enc.speech.stats.items - before == 5  # one encoded input per chunk


def test_chunk_hits_equal_the_release_computation(enc: NeuralEncoders) -> None:
    manager = IndexManager(enc.terms, IndexParams(use_gpu=False))
    manager.update(snapshot(TERMS)).result(timeout=60)
    terms = enc.terms.encode_terms(TERMS).vectors
    retriever = ChunkRetriever(enc.speech.open_stream(), manager, ["g"], ["de"])
    audio = np.concatenate([_pcm(0.96, seed=10 + i) for i in range(4)])
    chunk = 15_360
    k, tau = 3, -1.0
    try:
        for i in range(4):
            start, end = i * chunk, (i + 1) * chunk
            hits = retriever.process(
                i, start, audio[start:end], aggregation=AggregationParams(k, k, tau)
            )
            ref = _reference(enc, audio, start, end)
            scores = np.max(np.stack([v for _, _, v in ref]) @ terms.T, axis=0)
            order = np.argsort(-scores)[:k]
            assert [h.source for h in hits.hits] == [TERMS[j] for j in order]
            np.testing.assert_allclose([h.score for h in hits.hits], scores[order], atol=1e-4)
            for h in hits.hits:
                assert h.end_sample > start  # the evidence reaches into this chunk
        # τ drops what scores below it, as the release's threshold does.
        high = retriever.process(
            4, 4 * chunk, _pcm(0.96, seed=30), aggregation=AggregationParams(k, k, 0.999)
        )
        assert high.hits == ()
    finally:
        manager.close()


def test_windows_setting_keeps_the_per_window_path() -> None:
    e = _encoders(windowing="windows")
    try:
        stream = e.speech.open_stream()
        assert not isinstance(stream, SpanSpeechStream)
    finally:
        e.close()


def test_concurrent_sessions_share_forward_passes_with_spans() -> None:
    e = _encoders(window_seconds=0.02)
    try:
        barrier = threading.Barrier(16)

        def session(seed: int) -> None:
            stream = e.speech.open_stream()
            start = 0
            for i in range(3):
                pcm = _pcm(0.96, seed=seed + i)
                stream.push(pcm)
                barrier.wait()  # chunks of all sessions arrive together, as in real time
                stream.encode_span(start, start + len(pcm))
                start += len(pcm)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(session, range(16)))
        stats = e.speech.stats
        assert stats.items == 48  # one input per session and chunk
        assert stats.max_batch > 1 and stats.batches < stats.items / 2
    finally:
        e.close()
