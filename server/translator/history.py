"""The bounded per-language conversation history and its trim policies.

vLLM's prefix cache reuses the KV blocks of the longest prompt prefix it has
seen. The prompt is ``system, (user, answer) × n, new user``: as long as the
history only grows at the end, each request's prefix is the previous request's
prompt plus its answer, and almost everything is a cache hit. Dropping the
oldest pair changes the prompt right after the system prompt and invalidates
everything behind it.

* ``STEP`` (the reference): once full, drop one pair per chunk — a cache miss
  on the whole history at every step.
* ``BLOCK`` (default): once over the limit, drop ``block`` pairs at once — one
  miss every ``block`` chunks, and the history keeps between
  ``limit + 1 - block`` and ``limit`` chunks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from server.translator.messages import Message
from server.translator.params import HistoryParams, TrimPolicy


class History:
    """Past (user turn, raw answer) pairs of one target language, oldest first."""

    __slots__ = ("_block", "_limit", "_pairs", "_policy")

    def __init__(self, params: HistoryParams, lm: int) -> None:
        self._policy = params.policy
        self._limit = params.limit(lm)
        self._block = params.block_size(lm)
        self._pairs: deque[tuple[Message, str]] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[tuple[Message, str]]:
        return iter(self._pairs)

    def append(self, user_turn: Message, raw_answer: str) -> int:
        """Record an answered chunk, trimming per policy; returns the pairs dropped."""
        self._pairs.append((user_turn, raw_answer))
        if len(self._pairs) <= self._limit:
            return 0
        if self._policy is TrimPolicy.STEP:
            return self._trim_to(self._limit)
        # Dropping `block` pairs; with block = 1 this is exactly the step policy.
        return self._trim_to(max(0, self._limit + 1 - self._block))

    def drop_block(self) -> int:
        """Drop the oldest block now (the prompt was rejected, e.g. as too long)."""
        return self._trim_to(max(0, len(self._pairs) - max(self._block, len(self._pairs) // 2)))

    def _trim_to(self, size: int) -> int:
        dropped = 0
        while len(self._pairs) > size:
            self._pairs.popleft()
            dropped += 1
        return dropped
