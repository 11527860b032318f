"""A circuit breaker shared by all sessions that talk to one LLM endpoint.

When the endpoint is down, every session's chunk would otherwise wait for a
connect timeout (and its retries). After ``failures`` consecutive failures the
breaker *opens*: requests fail at once, without touching the network. After
``reset`` seconds one request is let through as a probe (*half-open*); its
success closes the breaker (translation resumes everywhere by itself), its
failure opens it again with a longer reset (exponential, capped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from server.translator.params import FaultParams


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """The breaker refused a request without trying it."""


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe.

    Not thread-safe; used from one event loop, where each method runs without
    interruption (no awaits inside).
    """

    def __init__(self, params: FaultParams, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = max(1, params.breaker_failures)
        self._base_reset = params.breaker_reset_seconds
        self._max_reset = max(params.breaker_reset_max_seconds, params.breaker_reset_seconds)
        self._clock = clock
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._reset = self._base_reset
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._reset:
            return BreakerState.HALF_OPEN
        return self._state

    def acquire(self) -> bool:
        """Ask to send a request; returns whether it is the half-open probe.

        Raises :class:`CircuitOpenError` when the request must not be sent.
        """
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = True
            return True
        raise CircuitOpenError("LLM endpoint marked unavailable; waiting before the next try")

    def success(self, probe: bool) -> None:
        if probe:
            self._probe_in_flight = False
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._reset = self._base_reset

    def failure(self, probe: bool) -> None:
        if probe:
            self._probe_in_flight = False
            # The endpoint is still down: back off longer before the next probe.
            self._reset = min(self._reset * 2, self._max_reset)
            self._open()
            return
        self._failures += 1
        if self._failures >= self._threshold and self._state is BreakerState.CLOSED:
            self._open()

    def release(self, probe: bool) -> None:
        """The request ended with neither verdict (cancelled): free the probe slot."""
        if probe:
            self._probe_in_flight = False
            if self._state is BreakerState.HALF_OPEN:
                # Let the next request probe at once.
                self._state = BreakerState.OPEN
                self._opened_at = self._clock() - self._reset

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
