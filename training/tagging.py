"""Wrapping the glossary translations a reference uses in ``<t>…</t>``.

The fine-tuned RASST models mark the term_map translations they used with ``<t>…</t>``
(:mod:`server.translator.tags` strips them before users see text). Training targets get
the tags here: only exact occurrences of the target string, never a piece of a longer
word. Where the language writes spaces between words (de, fr, …), a Latin letter or digit
right before or after the occurrence means it is part of another word ("Korpus" inside
"Textkorpus" or "Korpusse" is not tagged). Chinese and Japanese have no word boundaries:
any exact occurrence counts, except inside an already tagged span.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from evaluation.metrics.bleu import is_char_level

OPEN = "<t>"
CLOSE = "</t>"
# Letters and digits that join words in the spaced scripts we translate into
# (Latin with accents, Greek, Cyrillic); a neighbour from these extends the word.
_WORD_CHAR = re.compile(r"[0-9A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff]")


def _joins(char: str) -> bool:
    return bool(_WORD_CHAR.match(char))


def occurrences(text: str, target: str, lang: str) -> list[tuple[int, int]]:
    """Non-overlapping ``(start, end)`` spans of ``target`` in ``text`` that are whole words.

    Word boundaries are checked only for spaced languages, and only on the side where the
    target itself starts or ends with a word character (``"C++"`` may touch anything).
    """
    if not target:
        return []
    spans: list[tuple[int, int]] = []
    check = not is_char_level(lang)
    start = 0
    while (at := text.find(target, start)) >= 0:
        end = at + len(target)
        whole = not check or (
            not (at > 0 and _joins(text[at - 1]) and _joins(target[0]))
            and not (end < len(text) and _joins(text[end]) and _joins(target[-1]))
        )
        if whole:
            spans.append((at, end))
            start = end
        else:
            start = at + 1
    return spans


def tagged_spans(text: str) -> list[tuple[int, int]]:
    """Spans of ``<t>…</t>`` (tags included) already in ``text``."""
    spans = []
    start = 0
    while (at := text.find(OPEN, start)) >= 0:
        end = text.find(CLOSE, at + len(OPEN))
        if end < 0:
            break
        spans.append((at, end + len(CLOSE)))
        start = end + len(CLOSE)
    return spans


def wrap_first(text: str, target: str, lang: str) -> tuple[str, bool]:
    """``text`` with the first untagged whole occurrence of ``target`` wrapped, and whether one was."""
    taken = tagged_spans(text)
    for at, end in occurrences(text, target, lang):
        if any(at < t_end and end > t_start for t_start, t_end in taken):
            continue
        return text[:at] + OPEN + target + CLOSE + text[end:], True
    return text, False


def wrap_terms(text: str, targets: Iterable[str], lang: str) -> tuple[str, list[str]]:
    """Wrap the first occurrence of each target; longer targets first, so a term inside a
    longer one ("Korpus" in "annotierter Korpus") does not take its place. Returns the text
    and the targets that were wrapped."""
    wrapped: list[str] = []
    for target in sorted(dict.fromkeys(targets), key=len, reverse=True):
        text, done = wrap_first(text, target, lang)
        if done:
            wrapped.append(target)
    return text, wrapped


def count_tags(texts: Sequence[str]) -> int:
    return sum(text.count(OPEN) for text in texts)
