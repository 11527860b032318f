"""Per-caller rate limits: one token bucket per API key (or client address).

A bucket refills at ``per_minute / 60`` tokens a second up to ``burst``; each
REST request and each session start takes one token. Buckets live in a bounded
LRU so that a flood of random keys cannot grow memory: an evicted caller
simply starts again with a full bucket.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from glossary.auth import key_from_headers

_MAX_CALLERS = 50_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = _MAX_CALLERS,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._max_callers = max_callers
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def acquire(self, caller: str) -> float:
        """Take one token for ``caller``: 0.0 when allowed, else seconds until one is free."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        bucket = self._buckets.pop(caller, None)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        self._buckets[caller] = bucket
        if len(self._buckets) > self._max_callers:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate


def caller_identity(headers: Mapping[str, str], query_key: str | None, client: str | None) -> str:
    """Who is calling, for rate limiting: a digest of the API key, else the client address.

    The key is hashed so the limiter never holds a usable secret.
    """
    key = key_from_headers(headers.get("authorization"), headers.get("x-api-key")) or query_key
    if key:
        return "key:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"addr:{client or 'unknown'}"
