"""Window arithmetic at chunk boundaries (16 kHz samples)."""

from __future__ import annotations

import pytest

from retriever.windows import Window, WindowCache, WindowSchedule

W, S = 30_720, 7_680  # 1.92 s, 0.48 s
CHUNK = 15_360  # 0.96 s × lm


def chunks(lm: int, total: int) -> list[tuple[int, int]]:
    size = CHUNK * lm
    return [(s, min(s + size, total)) for s in range(0, total, size)]


def test_defaults_are_the_reference_window_and_stride() -> None:
    schedule = WindowSchedule.from_seconds()
    assert (schedule.window_samples, schedule.stride_samples) == (W, S)
    assert (WindowSchedule().window_samples, WindowSchedule().stride_samples) == (W, S)


def test_first_chunk_gets_clipped_windows_at_stream_start() -> None:
    schedule = WindowSchedule()
    assert schedule.windows_for_chunk(0, CHUNK) == [Window(0, S), Window(0, 2 * S)]


def test_steady_state_chunk_keeps_windows_overlapping_it_within_the_lookback() -> None:
    schedule = WindowSchedule()
    start, end = 10 * CHUNK, 11 * CHUNK
    windows = schedule.windows_for_chunk(start, end)
    assert windows == [Window(start - W + S, start + S), Window(start - W + 2 * S, end)]
    for w in windows:
        assert w.length == W
        assert w.start >= schedule.lookback_start(start)
        assert w.end <= end  # never audio from the future
        assert w.overlaps(start, end)


@pytest.mark.parametrize("lm", [1, 2, 3, 4])
def test_consecutive_chunks_cover_the_grid_once(lm: int) -> None:
    schedule = WindowSchedule()
    total = 24 * CHUNK  # a whole number of chunks for every lm
    seen: list[Window] = []
    for start, end in chunks(lm, total):
        windows = schedule.windows_for_chunk(start, end)
        assert len(windows) == 2 * lm  # one window per stride of new audio
        seen.extend(windows)
    assert len(seen) == len(set(seen))  # no window scheduled twice
    ends = [w.end for w in seen]
    assert ends == list(range(S, total + 1, S))  # every grid point, in order


@pytest.mark.parametrize("lm", [1, 2, 3, 4])
def test_a_term_inside_any_window_span_is_seen_by_some_window(lm: int) -> None:
    schedule = WindowSchedule()
    windows = [w for s, e in chunks(lm, 20 * CHUNK) for w in schedule.windows_for_chunk(s, e)]
    term = W - S  # the longest span a stride-δ grid always contains whole
    for term_start in range(0, 20 * CHUNK - W, 1_000):
        assert any(w.start <= term_start and term_start + term <= w.end for w in windows)


def test_stream_end_adds_a_tail_window_when_the_end_is_off_grid() -> None:
    schedule = WindowSchedule()
    start, end = 4 * CHUNK, 4 * CHUNK + 5_000  # final chunk, shorter than a stride
    assert schedule.windows_for_chunk(start, end) == []
    assert schedule.windows_for_chunk(start, end, final=True) == [Window(end - W, end)]
    # On the grid: no extra window.
    on_grid = schedule.windows_for_chunk(start, start + S, final=True)
    assert on_grid == [Window(start + S - W, start + S)]


def test_short_stream_final_chunk_is_clipped_at_zero() -> None:
    assert WindowSchedule().windows_for_chunk(0, 3_000, final=True) == [Window(0, 3_000)]


def test_off_grid_chunk_sizes_still_partition_windows() -> None:
    schedule = WindowSchedule(window_samples=32_000, stride_samples=4_800)
    bounds = [0, 7_001, 19_999, 20_000, 51_234, 90_000]
    seen = [
        w
        for s, e in zip(bounds, bounds[1:], strict=False)
        for w in schedule.windows_for_chunk(s, e)
    ]
    assert len(seen) == len(set(seen))
    # Window ends sit at W + k·δ (≡ 3,200 mod 4,800 here), clipped ones included.
    assert [w.end for w in seen] == list(range(3_200, 90_001, 4_800))


def test_empty_and_invalid() -> None:
    assert WindowSchedule().windows_for_chunk(100, 100) == []
    with pytest.raises(ValueError):
        WindowSchedule(1_000, 2_000)
    with pytest.raises(ValueError):
        WindowSchedule(0, 0)


def test_cache_computes_each_window_once_and_evicts_old_ones() -> None:
    cache: WindowCache[int] = WindowCache()
    calls: list[list[Window]] = []

    def compute(ws: list[Window]) -> list[int]:
        calls.append(ws)
        return [w.end for w in ws]

    a, b, c = Window(0, S), Window(0, 2 * S), Window(S, 3 * S)
    assert cache.get_or_compute([a, b], compute) == [S, 2 * S]
    assert cache.get_or_compute([b, c], compute) == [2 * S, 3 * S]
    assert calls == [[a, b], [c]]  # b was not recomputed; a and b share a start
    assert (cache.hits, cache.misses) == (1, 3)
    cache.evict_ending_before(2 * S)
    assert len(cache) == 1
