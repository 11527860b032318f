"""Glossary terms as Whisper hotwords: a bounded, best-first list for the decoder prompt.

Whisper's prompt holds about 220 tokens and the front end gives hotwords half
of its budget, so a large glossary cannot fit. Best first: the organiser's
priority, then terms Whisper is least likely to spell right unaided (acronyms,
names and other words with capitals or digits: "RoBERTa", "BLEU", "GPT-3"),
then longer terms, then glossary order. The result depends only on the
glossaries, so captions stay a function of the audio and the glossary.
"""

from __future__ import annotations

from collections.abc import Sequence

from glossary.model import GlossaryEntry, GlossarySnapshot

MAX_HOTWORD_CHARS = 240


def _rank(position: int, entry: GlossaryEntry) -> tuple[int, int, int, int]:
    source = entry.source
    marked = any(c.isupper() or c.isdigit() for c in source[1:]) or source.isupper()
    return (-entry.priority, 0 if marked else 1, -len(source.split()), position)


def hotwords_for(glossaries: Sequence[GlossarySnapshot], max_chars: int = MAX_HOTWORD_CHARS) -> str:
    """Comma-separated glossary terms, best first, at most ``max_chars`` long."""
    entries = [e for g in glossaries for e in g.entries]
    ranked = sorted(enumerate(entries), key=lambda item: _rank(*item))
    chosen: list[str] = []
    seen: set[str] = set()
    length = 0
    for _, entry in ranked:
        term = " ".join(entry.source.split())
        key = term.lower()
        if not term or key in seen or len(term) > max_chars:
            continue
        extra = len(term) + (2 if chosen else 0)
        if length + extra > max_chars:
            continue
        chosen.append(term)
        seen.add(key)
        length += extra
    return ", ".join(chosen)
