"""LocalAgreement-2 (Macháček et al., whisper_streaming) over an utterance's hypotheses.

Each partial decode of the open utterance gives a hypothesis; the words on
which the last two hypotheses agree (their longest common prefix, compared
without case and punctuation) are *stable*: a later decode of more audio is
unlikely to change them. A caption client can show stable words as settled
and the rest as tentative. Pure logic, no model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_NORM = re.compile(r"[^\w']+")


def word_key(text: str) -> str:
    return _NORM.sub("", text.lower())


def agreed_prefix(previous: Sequence[str], current: Sequence[str]) -> int:
    """How many leading words ``previous`` and ``current`` share (normalised)."""
    n = 0
    for a, b in zip(previous, current, strict=False):
        if word_key(a) != word_key(b):
            break
        n += 1
    return n


class LocalAgreement:
    """Tracks the stable prefix of one utterance's successive hypotheses."""

    def __init__(self) -> None:
        self._previous: tuple[str, ...] = ()
        self._stable = 0

    @property
    def stable(self) -> int:
        return self._stable

    def update(self, words: Sequence[str]) -> int:
        """Add a hypothesis; returns how many of its leading words are stable.

        Stability never moves backwards past words already reported stable,
        unless the new hypothesis is shorter (then it is capped at its length).
        """
        agreed = agreed_prefix(self._previous, words)
        self._stable = min(len(words), max(self._stable, agreed))
        self._previous = tuple(words)
        return self._stable

    def reset(self) -> None:
        self._previous = ()
        self._stable = 0
