"""The neural retriever behind the :mod:`retriever.encoders` protocols.

* :class:`NeuralSpeechEncoder` — shared by all sessions; owns the speech
  tower and the cross-session :class:`~retriever.neural.batcher.MicroBatcher`.
* :class:`NeuralSpeechStream` — per session: keeps the recent audio (a
  compacting buffer, not a concatenation per push), computes each window's
  features in the caller's thread, and encodes each window once (results are
  kept for the windows of the current chunk, so ``encode`` and
  ``encode_multi`` of the same windows share one forward pass).
* :class:`NeuralSpanStream` — the default with MaxSim pooling (the release's
  serving path): per chunk it encodes ``[chunk start − 1.92 s, chunk end]``
  once and returns the multi-scale sub-windows of that one encoding that reach
  into the chunk (:meth:`NeuralSpanStream.encode_span`).
* :class:`NeuralTermEncoder` — BGE-M3 term vectors for the FAISS index.

The audio encoder is bidirectional over its input and Whisper features are
normalised per input, so a window cannot be assembled from frames computed
for a longer span: the unit of work is the window, and each is encoded once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from retriever.encoders import SpanVectors, TermVectors, WindowVectors
from retriever.neural.batcher import BatchStats, MicroBatcher
from retriever.neural.config import NeuralServingParams
from retriever.neural.features import N_FFT, LogMelFrontend, pcm16_to_float
from retriever.neural.models import RetrieverModels, build_models
from retriever.neural.speech import flatten_features, subwindow_frames
from retriever.neural.text import encode_terms
from retriever.windows import SAMPLE_RATE, Window

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WindowEmbedding:
    """One window's result: its single vector and its MaxSim rows (one row for attention)."""

    single: np.ndarray  # (d,)
    rows: np.ndarray  # (n, d)
    frames: int = 0  # encoder frames of the input (the sub-window layout depends on it)


class NeuralSpeechEncoder:
    def __init__(
        self,
        models: RetrieverModels,
        params: NeuralServingParams | None = None,
        keep_seconds: float = 8.0,
    ) -> None:
        self.models = models
        self.params = params or NeuralServingParams(model=models.config)
        self._encoder_id = models.config.encoder_id()
        self._keep = int(keep_seconds * SAMPLE_RATE)
        # Features on the CPU in the sessions' threads (they run in parallel);
        # only the transformer pass is serialised through the batcher.
        self.frontend = LogMelFrontend("cpu")
        self._batcher: MicroBatcher[torch.Tensor, WindowEmbedding] = MicroBatcher(
            self.forward_windows,
            self.params.batching.window_seconds,
            self.params.batching.max_batch,
            name="neural-speech-batcher",
        )

    @property
    def encoder_id(self) -> str:
        return self._encoder_id

    @property
    def dim(self) -> int:
        return self.models.config.target_dim

    @property
    def multi_vector(self) -> bool:
        return self.models.config.pooling == "maxsim"

    @property
    def stats(self) -> BatchStats:
        return self._batcher.stats

    def open_stream(self) -> NeuralSpeechStream:
        if self.params.span_windowing:
            return NeuralSpanStream(self, self._keep)
        return NeuralSpeechStream(self, self._keep)

    def encode_windows(self, mels: Sequence[torch.Tensor]) -> list[WindowEmbedding]:
        """Blocking: queue these windows' features with other sessions' and wait."""
        return self._batcher(mels)

    def close(self) -> None:
        self._batcher.close()

    def forward_windows(self, mels: list[torch.Tensor]) -> list[WindowEmbedding]:
        """One forward pass over many windows (the batcher's worker thread calls this)."""
        speech = self.models.speech
        features, lens = flatten_features(mels)
        with torch.inference_mode():
            features = features.to(self.models.device, self.models.dtype)
            hidden, mask, lengths = speech.frames(features, lens.to(self.models.device))
            pooled = speech.pool(hidden, mask, lengths)
            frames = [int(n) for n in lengths.tolist()]
            if pooled.valid is None:
                vecs = pooled.vectors.cpu().numpy()
                return [
                    WindowEmbedding(v, v[None, :], n) for v, n in zip(vecs, frames, strict=True)
                ]
            means = speech.mean_vectors(hidden, mask, lengths).cpu().numpy()
            sub = pooled.vectors.cpu().numpy()
            valid = pooled.valid.cpu().numpy()
        return [WindowEmbedding(means[b], sub[b][valid[b]], frames[b]) for b in range(len(mels))]


class NeuralSpeechStream:
    """One session's audio and window results. Not thread-safe: one caller at a time."""

    def __init__(self, encoder: NeuralSpeechEncoder, keep_samples: int) -> None:
        self._encoder = encoder
        self._keep = keep_samples
        self._buf = np.zeros(2 * keep_samples, dtype=np.int16)
        self._buf_start = 0  # stream sample index of self._buf[0]
        self._len = 0  # valid samples in self._buf
        self._results: OrderedDict[Window, WindowEmbedding] = OrderedDict()

    @property
    def end(self) -> int:
        return self._buf_start + self._len

    def push(self, pcm: np.ndarray) -> None:
        pcm = np.asarray(pcm, dtype=np.int16).reshape(-1)
        n = len(pcm)
        if self._len + n > len(self._buf):
            # Drop audio no window can still need, then grow only if one push is huge.
            drop = max(0, self._len + n - self._keep)
            drop = min(drop, self._len)
            self._buf[: self._len - drop] = self._buf[drop : self._len]
            self._buf_start += drop
            self._len -= drop
            if self._len + n > len(self._buf):
                grown = np.zeros(2 * (self._len + n), dtype=np.int16)
                grown[: self._len] = self._buf[: self._len]
                self._buf = grown
        self._buf[self._len : self._len + n] = pcm
        self._len += n

    def audio(self, window: Window) -> np.ndarray:
        """The window's samples as float32; at least one FFT frame (zero-padded) long."""
        if window.start < self._buf_start or window.end > self.end or window.end <= window.start:
            raise ValueError(
                f"window [{window.start}, {window.end}) is outside the kept audio "
                f"[{self._buf_start}, {self.end})"
            )
        pcm = self._buf[window.start - self._buf_start : window.end - self._buf_start]
        wave = pcm16_to_float(pcm)
        if len(wave) < N_FFT:
            wave = np.pad(wave, (0, N_FFT - len(wave)))
        return wave

    def _embed(self, windows: Sequence[Window]) -> list[WindowEmbedding]:
        todo = [w for w in dict.fromkeys(windows) if w not in self._results]
        if todo:
            mels = self._encoder.frontend([self.audio(w) for w in todo])
            for window, result in zip(todo, self._encoder.encode_windows(mels), strict=True):
                self._results[window] = result
            # The chunk retriever asks for each window once (plus encode_multi of
            # the same windows); a small memory is enough.
            while len(self._results) > 64:
                self._results.popitem(last=False)
        return [self._results[w] for w in windows]

    def encode(self, windows: Sequence[Window]) -> np.ndarray:
        if not windows:
            return np.zeros((0, self._encoder.dim), dtype=np.float32)
        return np.stack([r.single for r in self._embed(windows)]).astype(np.float32, copy=False)

    def encode_multi(self, windows: Sequence[Window]) -> WindowVectors:
        results = self._embed(windows)
        if not results:
            return WindowVectors(
                np.zeros((0, self._encoder.dim), np.float32), np.zeros(0, np.int64)
            )
        rows = np.concatenate([r.rows for r in results]).astype(np.float32, copy=False)
        owners = np.repeat(np.arange(len(results), dtype=np.int64), [len(r.rows) for r in results])
        return WindowVectors(np.ascontiguousarray(rows), owners)

    def close(self) -> None:
        self._results.clear()


class NeuralSpanStream(NeuralSpeechStream):
    """Encode-once spans: one forward pass per chunk over ``[start − lookback, end]``.

    The release's serving path (``retrieve_timeline`` in its streaming MaxSim
    retriever): the span's features go through the encoder once, the projected
    frames are pooled at every MaxSim size, and each sub-window is placed on the
    stream's timeline by scaling its frame range to the span's true length (the
    encoder's frame count is rounded). Sub-windows that end at or before the
    chunk's first sample are dropped: they were evidence for an earlier chunk;
    those crossing the boundary stay, so a term split across chunks is found.
    """

    def __init__(self, encoder: NeuralSpeechEncoder, keep_samples: int) -> None:
        super().__init__(encoder, keep_samples)
        self._lookback = round(encoder.params.lookback_seconds * SAMPLE_RATE)
        config = encoder.models.config
        self._sizes = tuple(config.maxsim_windows)
        self._stride = config.maxsim_stride

    def encode_span(self, start: int, end: int) -> SpanVectors:
        """Sub-windows of ``[max(0, start − lookback), end)`` that overlap ``[start, end)``."""
        dim = self._encoder.dim
        empty = SpanVectors(
            [], WindowVectors(np.zeros((0, dim), np.float32), np.zeros(0, np.int64))
        )
        if end <= start:
            return empty
        span = Window(max(0, start - self._lookback, self._buf_start), end)
        mel = self._encoder.frontend([self.audio(span)])
        result = self._encoder.encode_windows(mel)[0]
        f_starts, f_ends = subwindow_frames(result.frames, self._sizes, self._stride)
        if not f_ends or len(f_ends) != len(result.rows):
            raise RuntimeError(
                f"{len(result.rows)} sub-window vectors for {len(f_ends)} sub-windows "
                f"of {result.frames} frames"
            )
        nominal = max(f_ends)
        length = span.length
        offset = start - span.start
        windows: dict[Window, int] = {}
        owners: list[int] = []
        keep: list[int] = []
        for row, (fs, fe) in enumerate(zip(f_starts, f_ends, strict=True)):
            # On the span's timeline a frame f sits at f·length/nominal samples;
            # integer arithmetic for the boundary test (no rounding at the edge).
            if fe * length <= offset * nominal:
                continue  # ends before the chunk starts: evidence of an earlier chunk
            window = Window(
                span.start + (fs * length) // nominal,
                span.start + -((-fe * length) // nominal),
            )
            owners.append(windows.setdefault(window, len(windows)))
            keep.append(row)
        if not keep:
            return empty
        order = np.argsort(np.asarray(owners, np.int64), kind="stable")  # owners non-decreasing
        rows = np.ascontiguousarray(result.rows[np.asarray(keep)[order]], dtype=np.float32)
        return SpanVectors(list(windows), WindowVectors(rows, np.asarray(owners, np.int64)[order]))


class NeuralTermEncoder:
    """BGE-M3 CLS vectors, one per term (thread-safe: builds run in the index thread)."""

    def __init__(self, models: RetrieverModels, batch_size: int = 64) -> None:
        self.models = models
        self._batch_size = batch_size
        self._encoder_id = models.config.encoder_id()
        self._lock = threading.Lock()

    @property
    def encoder_id(self) -> str:
        return self._encoder_id

    @property
    def dim(self) -> int:
        return self.models.config.target_dim

    def encode_terms(self, terms: Sequence[str]) -> TermVectors:
        if not terms:
            return TermVectors(np.zeros((0, self.dim), np.float32), np.zeros(0, np.int64))
        with self._lock:  # one glossary build at a time on the model
            vecs = encode_terms(
                self.models.text,
                self.models.tokenizer,
                list(terms),
                self.models.config.max_term_tokens,
                self._batch_size,
                self.models.device,
            )
        return TermVectors(
            np.ascontiguousarray(vecs.numpy(), dtype=np.float32),
            np.arange(len(terms), dtype=np.int64),
        )


@dataclass(slots=True)
class NeuralEncoders:
    speech: NeuralSpeechEncoder
    terms: NeuralTermEncoder

    def close(self) -> None:
        self.speech.close()


def load_neural_encoders(params: NeuralServingParams, **build: Any) -> NeuralEncoders:
    """Load the models once and wrap them (blocking: seconds to minutes for real weights).

    ``build`` goes to :func:`~retriever.neural.models.build_models` (tests pass
    tiny configs and a tokenizer there).
    """
    models = build_models(params.model, **build)
    log.info(
        "neural retriever ready: %s on %s (%s), encoder id %s",
        params.model.pooling,
        models.device,
        models.dtype,
        params.model.encoder_id(),
    )
    return NeuralEncoders(
        NeuralSpeechEncoder(models, params), NeuralTermEncoder(models, params.term_batch_size)
    )
