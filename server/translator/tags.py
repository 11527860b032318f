"""Removing term tags from model output, also while it streams.

The fine-tuned RASST models wrap the glossary translations they used in
``<t>…</t>`` (older checkpoints: ``<term>…</term>``). Users must never see the
tags; the text between them stays. Sampling also produces malformed variants
(``< t >``, ``</ t>``, ``<t/>``, full-width brackets, a tag that lost its ``>``
or was cut off by ``max_tokens``), and a stream may split a tag across deltas
(``"<"``, ``"/t"``, ``">"``). :class:`TagStripper` holds back only the
shortest tail that could still become a tag, so text is never delayed longer
than needed.
"""

from __future__ import annotations

import re

_OPEN = "<＜"
_CLOSE = ">＞"
# Letters that may follow "<t" in a real word (Latin incl. accents); "<t"
# followed by anything else (space, CJK, digit, end of text) is a tag that lost
# its closing bracket.
_LATIN = "A-Za-z\u00c0-\u024f"

TAG = re.compile(
    # Complete tag, or one without its closing bracket (then the whitespace
    # after it is the user's text and stays).
    rf"[{_OPEN}]\s*/?\s*(?:term|t)(?:\s*/?\s*[{_CLOSE}]|/?(?![{_LATIN}{_CLOSE}]))",
    re.IGNORECASE,
)
# A tail that may still grow into a tag: "<", "</", "< t", "<te", "</term ", …
_PARTIAL = re.compile(
    rf"[{_OPEN}]\s*/?\s*(?:t(?:e(?:r(?:m)?)?)?)?\s*/?\s*\Z",
    re.IGNORECASE,
)
# Tails dropped at the very end: a cut-off closing tag ("</", "</te").
_CUT_CLOSING = re.compile(rf"[{_OPEN}]\s*/\s*(?:t(?:e(?:r)?)?)?\s*\Z", re.IGNORECASE)
# Longest tail we ever hold back; anything longer cannot be a tag prefix.
_MAX_HOLD = 16


def strip_tags(text: str) -> str:
    """``text`` without term tags (complete text, e.g. a whole answer)."""
    stripper = TagStripper()
    return stripper.feed(text) + stripper.flush()


class TagStripper:
    """Streaming tag removal: ``feed`` each delta, ``flush`` at the end.

    The concatenation of everything returned equals :func:`strip_tags` of the
    concatenated input, however the input was split.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> str:
        """Visible text that became certain with ``delta`` (may be empty)."""
        buffer = self._pending + delta
        hold = self._hold_start(buffer)
        self._pending = buffer[hold:]
        return TAG.sub("", buffer[:hold])

    def flush(self) -> str:
        """The rest, once the stream has ended."""
        tail, self._pending = self._pending, ""
        tail = TAG.sub("", tail)
        return _CUT_CLOSING.sub("", tail)

    @staticmethod
    def _hold_start(buffer: str) -> int:
        """Index from which ``buffer`` might still be (part of) a tag."""
        for bracket_at in range(len(buffer) - 1, max(-1, len(buffer) - _MAX_HOLD - 1), -1):
            if buffer[bracket_at] in _OPEN:
                if _PARTIAL.match(buffer, bracket_at):
                    return bracket_at
                # Only the last bracket can start an unfinished tag.
                break
        return len(buffer)
