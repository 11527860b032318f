from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.errors import ErrorCode, RasstError
from server.audio import (
    Chunker,
    PaceLimiter,
    Resampler,
    check_audio_format,
    chunk_samples,
    decode_frame,
)
from server.protocol import SUPPORTED_SAMPLE_RATES, AudioFormat


@pytest.mark.parametrize(("lm", "expected"), [(1, 15360), (2, 30720), (3, 46080), (4, 61440)])
def test_chunk_size_is_096_seconds_times_lm(lm: int, expected: int) -> None:
    assert chunk_samples(lm) == expected


@given(
    frames=st.lists(st.integers(min_value=0, max_value=5000), min_size=0, max_size=40),
    size=st.sampled_from([160, 1000, 15360]),
)
def test_chunker_preserves_every_sample_in_order(frames: list[int], size: int) -> None:
    total = sum(frames)
    audio = (np.arange(total) % 30000).astype(np.int16)
    chunker = Chunker(size)
    chunks = []
    offset = 0
    for n in frames:
        chunks += chunker.push(audio[offset : offset + n], received_at=1.0)
        offset += n
    chunks += chunker.flush(received_at=2.0)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(len(c.pcm) == size for c in chunks[:-1])
    if chunks:
        assert 0 < len(chunks[-1].pcm) <= size
        assert chunks[-1].final == (total % size != 0)
    rebuilt = np.concatenate([c.pcm for c in chunks]) if chunks else np.zeros(0, np.int16)
    np.testing.assert_array_equal(rebuilt, audio)
    starts = [c.start_sample for c in chunks]
    assert starts == [i * size for i in range(len(chunks))]


def test_chunk_times_derive_from_sample_offsets() -> None:
    chunker = Chunker(chunk_samples(1))
    chunks = chunker.push(np.zeros(16000 * 3, np.int16), received_at=0.0)
    assert [(c.start, c.end) for c in chunks] == [(0.0, 0.96), (0.96, 1.92), (1.92, 2.88)]
    (tail,) = chunker.flush(received_at=0.0)
    assert (tail.start, tail.end, tail.final) == (2.88, 3.0, True)


def test_chunks_do_not_alias_the_internal_buffer() -> None:
    chunker = Chunker(4)
    (first,) = chunker.push(np.array([1, 2, 3, 4], np.int16), 0.0)
    chunker.push(np.array([9, 9, 9, 9], np.int16), 0.0)
    assert first.pcm.tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("rate", SUPPORTED_SAMPLE_RATES)
def test_resampler_yields_16k_length(rate: int) -> None:
    seconds = 2.0
    t = np.arange(int(rate * seconds)) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    resampler = Resampler(rate)
    out = [resampler.push(tone[i : i + rate // 10]) for i in range(0, len(tone), rate // 10)]
    out.append(resampler.flush())
    total = sum(len(x) for x in out)
    assert abs(total - 32000) <= 2
    joined = np.concatenate(out)
    assert joined.dtype == np.int16
    # The tone survives resampling: its energy is where it was.
    spectrum = np.abs(np.fft.rfft(joined[4000:20000].astype(float)))
    peak_hz = np.argmax(spectrum) * 16000 / 16000
    assert abs(peak_hz - 440) < 5


def test_decode_frame_rejects_odd_bytes_and_oversize() -> None:
    assert decode_frame(b"\x01\x00\xff\xff", 10).tolist() == [1, -1]
    with pytest.raises(RasstError) as odd:
        decode_frame(b"\x00\x00\x00", 10)
    assert odd.value.code == ErrorCode.BAD_AUDIO_FRAME
    with pytest.raises(RasstError) as big:
        decode_frame(b"\x00" * 12, 10)
    assert big.value.code == ErrorCode.FRAME_TOO_LARGE


def test_pace_limiter_allows_burst_then_real_time_multiple() -> None:
    pace = PaceLimiter(16000, max_pace=2.0, burst_seconds=1.0, started_at=0.0)
    pace.admit(16000, now=0.0)  # one second of burst
    pace.admit(32000, now=1.0)  # 3 s after 1 s: 2x + burst
    with pytest.raises(RasstError) as exc:
        pace.admit(1600, now=1.0)
    assert exc.value.code == ErrorCode.PACE_EXCEEDED


@pytest.mark.parametrize(
    ("fmt", "code"),
    [
        (AudioFormat(sample_rate=96000), ErrorCode.UNSUPPORTED_SAMPLE_RATE),
        (AudioFormat(sample_rate=7000), ErrorCode.UNSUPPORTED_SAMPLE_RATE),
        (AudioFormat(encoding="opus"), ErrorCode.UNSUPPORTED_ENCODING),
        (AudioFormat(channels=3), ErrorCode.UNSUPPORTED_ENCODING),
    ],
)
def test_unsupported_formats_have_stable_codes(fmt: AudioFormat, code: ErrorCode) -> None:
    with pytest.raises(RasstError) as exc:
        check_audio_format(fmt)
    assert exc.value.code == code
