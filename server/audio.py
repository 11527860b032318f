"""Audio intake stages: frame decoding, pace limiting, resampling, chunking.

All of them are pure objects with a push/flush interface so they can be tested
alone; none touches the network.
"""

from __future__ import annotations

import numpy as np
import soxr

from kernel.errors import ErrorCode, RasstError
from kernel.frames import PIPELINE_RATE, AudioChunk, AudioSlice, samples_for
from server.protocol import SUPPORTED_ENCODINGS, SUPPORTED_SAMPLE_RATES, AudioFormat

CHUNK_UNIT_SECONDS = 0.96


def chunk_samples(lm: int) -> int:
    """Samples per chunk at the pipeline rate: 0.96 s × lm."""
    return samples_for(CHUNK_UNIT_SECONDS * lm)


def check_audio_format(fmt: AudioFormat) -> None:
    if fmt.encoding not in SUPPORTED_ENCODINGS:
        raise RasstError(
            ErrorCode.UNSUPPORTED_ENCODING,
            f"audio encoding {fmt.encoding[:32]!r} is not supported; use one of "
            f"{list(SUPPORTED_ENCODINGS)}",
        )
    if fmt.channels not in (1, 2):
        raise RasstError(
            ErrorCode.UNSUPPORTED_ENCODING,
            f"{fmt.channels} channels: send mono or interleaved stereo",
        )
    if fmt.sample_rate not in SUPPORTED_SAMPLE_RATES:
        raise RasstError(
            ErrorCode.UNSUPPORTED_SAMPLE_RATE,
            f"sample rate {fmt.sample_rate} is not supported; use one of "
            f"{list(SUPPORTED_SAMPLE_RATES)}",
        )


def decode_frame(data: bytes, max_bytes: int, channels: int = 1) -> np.ndarray:
    """One binary WebSocket frame of s16le PCM as mono int16 samples (stereo: averaged)."""
    if len(data) > max_bytes:
        raise RasstError(
            ErrorCode.FRAME_TOO_LARGE,
            f"audio frame of {len(data)} bytes exceeds the limit of {max_bytes}",
        )
    if len(data) % (2 * channels):
        raise RasstError(
            ErrorCode.BAD_AUDIO_FRAME,
            f"audio frame of {len(data)} bytes is not a whole number of 16-bit "
            + ("samples" if channels == 1 else f"{channels}-channel frames"),
        )
    pcm = np.frombuffer(data, dtype="<i2").astype(np.int16, copy=False)
    if channels == 1:
        return pcm
    return pcm.reshape(-1, channels).mean(axis=1, dtype=np.float32).round().astype(np.int16)


class PaceLimiter:
    """Refuses audio that arrives faster than ``max_pace`` × real time.

    A client may send ``burst_seconds`` ahead (buffered microphone audio on
    connect, a file's first second); beyond that, audio must not outrun the
    wall clock by more than the pace factor.
    """

    def __init__(self, sample_rate: int, max_pace: float, burst_seconds: float, started_at: float):
        self._rate = sample_rate
        self._max_pace = max_pace
        self._burst = burst_seconds
        self._started_at = started_at
        self._samples = 0

    @property
    def received_seconds(self) -> float:
        return self._samples / self._rate

    def admit(self, samples: int, now: float) -> None:
        self._samples += samples
        allowed = self._max_pace * (now - self._started_at) + self._burst
        if self.received_seconds > allowed:
            raise RasstError(
                ErrorCode.PACE_EXCEEDED,
                f"audio arrives faster than {self._max_pace:g}x real time "
                f"({self.received_seconds:.2f} s of audio after "
                f"{now - self._started_at:.2f} s)",
            )


class Resampler:
    """Streaming conversion of int16 audio to the pipeline rate (soxr, HQ)."""

    def __init__(self, input_rate: int) -> None:
        self._passthrough = input_rate == PIPELINE_RATE
        self._stream = (
            None
            if self._passthrough
            else soxr.ResampleStream(input_rate, PIPELINE_RATE, 1, dtype="int16", quality="HQ")
        )

    def push(self, pcm: np.ndarray) -> np.ndarray:
        if self._stream is None:
            return pcm
        return self._stream.resample_chunk(pcm)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.int16)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)


class Chunker:
    """Cuts a stream of 16 kHz samples into fixed-size chunks.

    Samples are copied once into a preallocated chunk buffer (no concatenation
    of the whole history). ``push`` returns the chunks completed by the new
    samples; ``flush`` returns the trailing partial chunk, if any.
    """

    def __init__(self, samples_per_chunk: int) -> None:
        if samples_per_chunk <= 0:
            raise ValueError("samples_per_chunk must be positive")
        self._size = samples_per_chunk
        self._buffer = np.empty(samples_per_chunk, dtype=np.int16)
        self._filled = 0
        self._next_index = 0
        self._next_start = 0

    @property
    def pending_samples(self) -> int:
        return self._filled

    @property
    def emitted_samples(self) -> int:
        return self._next_start

    def push(self, pcm: np.ndarray, received_at: float) -> list[AudioChunk]:
        chunks: list[AudioChunk] = []
        offset = 0
        while offset < len(pcm):
            take = min(self._size - self._filled, len(pcm) - offset)
            self._buffer[self._filled : self._filled + take] = pcm[offset : offset + take]
            self._filled += take
            offset += take
            if self._filled == self._size:
                chunks.append(self._emit(received_at, final=False))
        return chunks

    def flush(self, received_at: float) -> list[AudioChunk]:
        if self._filled == 0:
            return []
        return [self._emit(received_at, final=True)]

    def _emit(self, received_at: float, *, final: bool) -> AudioChunk:
        chunk = AudioChunk(
            index=self._next_index,
            start_sample=self._next_start,
            pcm=self._buffer[: self._filled].copy(),
            received_at=received_at,
            final=final,
        )
        self._next_index += 1
        self._next_start += self._filled
        self._filled = 0
        return chunk


SLICE_SAMPLES = samples_for(0.48)
"""The speech front end's cadence: captions are decoded at most this far apart."""


class Slicer:
    """Cuts the stream into slices for the speech front end, and into chunks on slice bounds.

    Chunk sizes (0.96 s × lm) are whole numbers of slices, so every chunk ends
    exactly where a slice does; that slice carries the chunk. ``flush`` returns
    one last slice marked ``final`` (possibly empty), carrying the trailing
    partial chunk if there is one.
    """

    def __init__(self, samples_per_chunk: int, samples_per_slice: int = SLICE_SAMPLES) -> None:
        if samples_per_slice <= 0 or samples_per_chunk % samples_per_slice:
            raise ValueError("a chunk must be a whole number of slices")
        self._chunker = Chunker(samples_per_chunk)
        self._size = samples_per_slice
        self._buffer = np.empty(samples_per_slice, dtype=np.int16)
        self._filled = 0
        self._start = 0
        self._chunk_index = 0

    def push(self, pcm: np.ndarray, received_at: float) -> list[AudioSlice]:
        slices: list[AudioSlice] = []
        offset = 0
        while offset < len(pcm):
            take = min(self._size - self._filled, len(pcm) - offset)
            self._buffer[self._filled : self._filled + take] = pcm[offset : offset + take]
            self._filled += take
            offset += take
            if self._filled == self._size:
                slices.append(self._emit(received_at, final=False))
        return slices

    def flush(self, received_at: float) -> list[AudioSlice]:
        return [self._emit(received_at, final=True)]

    def _emit(self, received_at: float, *, final: bool) -> AudioSlice:
        piece = self._buffer[: self._filled].copy()
        chunks = self._chunker.push(piece, received_at)
        if final:
            chunks += self._chunker.flush(received_at)
        piece_slice = AudioSlice(
            chunk_index=self._chunk_index,
            start_sample=self._start,
            pcm=piece,
            chunk=chunks[-1] if chunks else None,
            final=final,
        )
        self._chunk_index += len(chunks)
        self._start += self._filled
        self._filled = 0
        return piece_slice
