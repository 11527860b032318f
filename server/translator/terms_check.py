"""The terminology check of the text tier: was each retrieved term rendered as the glossary says?

The text tier knows what it translated (the caption words of the segment), so
it can tell a term the model got wrong from a term that was not in the
segment at all: a term is *expected* when its source form occurs in the
segment's text, and *missed* when it is expected but its target form is not in
the translation. Matching ignores case and punctuation and respects word
edges for scripts that have them ("BLEU" is not found in "BLEUs" — a plural
would need a morphology the glossary does not give).

When terms are missed, one repair request may follow (``repair_messages``): the
conversation so far, the model's draft, and a user turn naming the missing
renderings and asking for the corrected translation alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from server.translator.messages import Message


def _fold(text: str) -> str:
    """Case-folded, punctuation as spaces, single-spaced (NFKC first: full-width forms)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    cleaned = "".join(
        ch if not unicodedata.category(ch).startswith(("P", "S")) else " " for ch in text
    )
    return " ".join(cleaned.split())


def contains_term(text: str, term: str) -> bool:
    """Whether ``term`` occurs in ``text`` as whole words (substring for CJK-like scripts)."""
    folded_term = _fold(term)
    if not folded_term:
        return False
    folded = _fold(text)
    if not folded_term.isascii() and not re.search(r"\s", folded_term):
        # No word edges to respect in unspaced scripts (zh, ja): a plain substring.
        return folded_term in folded.replace(" ", "")
    return re.search(rf"(?<!\w){re.escape(folded_term)}(?!\w)", folded) is not None


def expected_terms(source_text: str, term_map: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The term_map entries whose source form occurs in the segment."""
    return [(s, t) for s, t in term_map if contains_term(source_text, s)]


def terms_missed(
    source_text: str, translation: str, term_map: Sequence[tuple[str, str]]
) -> tuple[str, ...]:
    """Sources of expected terms whose target form is absent from the translation."""
    return tuple(
        source
        for source, target in expected_terms(source_text, term_map)
        if not contains_term(translation, target)
    )


REPAIR_PROMPT = (
    "Your translation must use these glossary renderings:\n{lines}\n"
    "Reply with the corrected translation of the last source text only."
)


def repair_messages(
    conversation: Sequence[Message],
    draft: str,
    missed: Sequence[str],
    term_map: Sequence[tuple[str, str]],
) -> list[Message]:
    """The one-shot repair request: the turn's conversation, the draft, the missing terms."""
    targets = dict(term_map)
    lines = "\n".join(f"{source}={targets[source]}" for source in missed if source in targets)
    return [
        *conversation,
        {"role": "assistant", "content": draft},
        {"role": "user", "content": REPAIR_PROMPT.format(lines=lines)},
    ]
