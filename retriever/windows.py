"""Sliding-window scheduling over a stream's 16 kHz audio, in integer samples.

Windows lie on one global grid anchored at sample 0 of the stream: window ``k``
covers ``[k·δ, k·δ + W)``, clipped at 0 for the first few (there is no audio
before the stream starts). For a chunk ``[start, end)`` the reference encodes
``[start − W, end]`` and keeps the windows that overlap the chunk; a window fits
in that span and overlaps the chunk exactly when its end lies in
``(start, end]``. So every window belongs to exactly one chunk: the one in
which its last sample arrives. Consecutive chunks therefore never schedule
the same window twice, whatever the chunk size or grid alignment, and no
window is ever encoded before all its audio has arrived (no future audio).

At the end of the stream the last chunk also gets a *tail* window ending at
the last sample when that sample is not on the grid, so that speech in the
final fraction of a stride is not lost.

:class:`WindowCache` memoises per-window results keyed by the window, for
callers that may plan the same span twice (a retried chunk, a flush after a
provisional pass) and to make the "never recompute" rule explicit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

SAMPLE_RATE = 16_000
DEFAULT_WINDOW_SAMPLES = 30_720  # 1.92 s
DEFAULT_STRIDE_SAMPLES = 7_680  # 0.48 s

T = TypeVar("T")


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A span of stream audio, ``[start, end)`` in samples."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def overlaps(self, start: int, end: int) -> bool:
        return self.start < end and self.end > start


class WindowSchedule:
    """Which windows to encode for each chunk of a stream (pure arithmetic)."""

    def __init__(
        self,
        window_samples: int = DEFAULT_WINDOW_SAMPLES,
        stride_samples: int = DEFAULT_STRIDE_SAMPLES,
    ) -> None:
        if window_samples <= 0 or stride_samples <= 0:
            raise ValueError("window and stride must be positive sample counts")
        if stride_samples > window_samples:
            # Audio between windows would never be looked at.
            raise ValueError("stride must not exceed the window length")
        self.window_samples = window_samples
        self.stride_samples = stride_samples

    @classmethod
    def from_seconds(
        cls, window: float = 1.92, stride: float = 0.48, rate: int = SAMPLE_RATE
    ) -> WindowSchedule:
        return cls(round(window * rate), round(stride * rate))

    def window_ending_at(self, end: int) -> Window:
        return Window(max(0, end - self.window_samples), end)

    def lookback_start(self, chunk_start: int) -> int:
        """First sample of audio the chunk's windows can touch (``start − W``, ≥ 0)."""
        return max(0, chunk_start - self.window_samples)

    def grid_windows_ending_in(self, start: int, end: int) -> Iterator[Window]:
        """Grid windows whose end lies in ``(start, end]``, oldest first.

        Window ``k`` (any integer) ends at ``k·δ + W``; windows with ``k < 0``
        start before the stream and are clipped to begin at sample 0.
        """
        w, s = self.window_samples, self.stride_samples
        # Smallest k whose window ends after max(start, 0); floor division is exact
        # for negative numerators too.
        k = (max(start, 0) - w) // s + 1
        while (window_end := k * s + w) <= end:
            yield Window(max(0, k * s), window_end)
            k += 1

    def windows_for_chunk(self, start: int, end: int, *, final: bool = False) -> list[Window]:
        """The windows to encode for chunk ``[start, end)``, oldest first.

        Every window lies inside ``[start − W, end]`` (the reference's look-back)
        and overlaps the chunk. At the stream start, windows that would begin
        before sample 0 are clipped, so a first chunk shorter than ``W`` still
        gets windows. With ``final`` a tail window ends at ``end`` when ``end`` is
        not a grid point.
        """
        if end <= start:
            return []
        windows = list(self.grid_windows_ending_in(start, end))
        if final and (not windows or windows[-1].end != end):
            windows.append(self.window_ending_at(end))
        return windows


class WindowCache(Generic[T]):
    """Per-window results keyed by the window; evicts what no later chunk can use.

    Keyed by ``(start, end)`` rather than the start alone: clipped head windows all
    start at 0, and a tail window may share a grid window's start.

    Not thread-safe: one per session, used by the session's retrieval calls in
    order.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._items: OrderedDict[Window, T] = OrderedDict()
        self._max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get_or_compute(
        self, windows: list[Window], compute: Callable[[list[Window]], list[T]]
    ) -> list[T]:
        """Results for ``windows``, computing (in one batch) only the missing ones."""
        missing = [w for w in windows if w not in self._items]
        self.hits += len(windows) - len(missing)
        self.misses += len(missing)
        if missing:
            results = compute(missing)
            if len(results) != len(missing):
                raise ValueError("compute returned a result count that does not match")
            for window, result in zip(missing, results, strict=True):
                self._items[window] = result
            while len(self._items) > self._max_entries:
                self._items.popitem(last=False)
        return [self._items[window] for window in windows]

    def evict_ending_before(self, sample: int) -> None:
        """Drop windows ending at or before ``sample`` (no later chunk overlaps them)."""
        for key in [w for w in self._items if w.end <= sample]:
            del self._items[key]
