"""Circuit breaker state machine, on a fake clock."""

from __future__ import annotations

import pytest

from server.translator.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from server.translator.params import FaultParams


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock) -> CircuitBreaker:
    params = FaultParams(
        breaker_failures=2, breaker_reset_seconds=1.0, breaker_reset_max_seconds=3.0
    )
    return CircuitBreaker(params, clock=clock)


def test_opens_after_consecutive_failures_and_fails_fast() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    breaker.failure(breaker.acquire())
    breaker.success(breaker.acquire())  # a success resets the count
    breaker.failure(breaker.acquire())
    assert breaker.state is BreakerState.CLOSED
    breaker.failure(breaker.acquire())
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        breaker.acquire()


def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(2):
        breaker.failure(breaker.acquire())
    clock.now = 1.0
    assert breaker.state is BreakerState.HALF_OPEN
    probe = breaker.acquire()
    assert probe is True
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # only one probe at a time
    breaker.success(probe)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.acquire() is False


def test_failed_probe_reopens_with_longer_capped_backoff() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(2):
        breaker.failure(breaker.acquire())
    wait = 1.0
    for next_wait in (2.0, 3.0, 3.0):  # doubled, then capped at 3 s
        clock.now += wait
        breaker.failure(breaker.acquire())
        clock.now += next_wait - 0.01
        with pytest.raises(CircuitOpenError):
            breaker.acquire()
        clock.now -= next_wait - 0.01
        wait = next_wait


def test_cancelled_probe_frees_the_slot() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(2):
        breaker.failure(breaker.acquire())
    clock.now = 5.0
    breaker.release(breaker.acquire())
    assert breaker.acquire() is True
