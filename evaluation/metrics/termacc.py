"""TERM_ACC, by the reference definition, and a form-aware variant for German.

Reference definition (RASST paper): for each re-segmented sentence and each glossary term
whose English occurs in the source and whose translation occurs in the reference, a hit if the
exact translation occurs in the hypothesis. Here:

- the candidate pairs of a sentence are its gold pairs (``terms`` in the dataset), each
  distinct (English case-folded, translation) pair once — a term repeated in a sentence
  is one check, not several;
- English "occurs": whole words, case-insensitive; translation "occurs": exact,
  case-sensitive substring (CJK has no word boundaries);
- term tags (``<t>…</t>``, older ``<term>…</term>``) are removed from the hypothesis first.

The form-aware variant (German) accepts inflected forms: tokens are compared case-folded,
umlauts folded and common inflection endings removed, in sequence (``annotierten Korpus``
matches ``annotierter Korpus``; ``Datensätze`` matches ``Datensatz``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from evaluation.dataset import GoldTerm
from evaluation.glossaries import normalise_term

_TAGS = re.compile(r"</?\s*(?:t|term)\s*>", re.IGNORECASE)
_GERMAN_ENDINGS = ("ern", "en", "em", "er", "es", "e", "n", "s")
_UMLAUTS = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss"})
_WORDS = re.compile(r"\w+", re.UNICODE)


def strip_tags(text: str) -> str:
    """Remove term tags, keeping their content."""
    return _TAGS.sub("", text)


def english_occurs(term: str, source: str) -> bool:
    pattern = r"(?<!\w)" + r"\s+".join(re.escape(w) for w in term.split()) + r"(?!\w)"
    return re.search(pattern, source, re.IGNORECASE) is not None


def german_stem(token: str) -> str:
    token = token.casefold().translate(_UMLAUTS)
    for ending in _GERMAN_ENDINGS:
        if token.endswith(ending) and len(token) - len(ending) >= 4:
            return token[: -len(ending)]
    return token


def _stems(text: str) -> list[str]:
    return [german_stem(t) for t in _WORDS.findall(text)]


def form_aware_occurs(target: str, hypothesis: str) -> bool:
    needle, haystack = _stems(target), _stems(hypothesis)
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


@dataclass(frozen=True)
class TermAccItem:
    source: str
    reference: str
    hypothesis: str
    terms: Sequence[GoldTerm]


@dataclass(frozen=True)
class TermAccScores:
    total: int
    hits: int
    hits_form_aware: int

    @property
    def term_acc(self) -> float | None:
        return self.hits / self.total if self.total else None

    @property
    def term_acc_form_aware(self) -> float | None:
        return self.hits_form_aware / self.total if self.total else None


def term_accuracy(
    items: Iterable[TermAccItem], *, glossary_terms: Iterable[str] | None = None
) -> TermAccScores:
    """TERM_ACC over sentences; with ``glossary_terms``, only gold terms in that glossary."""
    allowed = {normalise_term(t) for t in glossary_terms} if glossary_terms is not None else None
    total = hits = hits_form = 0
    for item in items:
        hypothesis = strip_tags(item.hypothesis)
        seen: set[tuple[str, str]] = set()
        for term in item.terms:
            key = (normalise_term(term.en), term.tgt)
            if key in seen or (allowed is not None and key[0] not in allowed):
                continue
            seen.add(key)
            if not english_occurs(term.en, item.source) or term.tgt not in item.reference:
                continue
            total += 1
            if term.tgt in hypothesis:
                hits += 1
                hits_form += 1
            elif form_aware_occurs(term.tgt, hypothesis):
                hits_form += 1
    return TermAccScores(total=total, hits=hits, hits_form_aware=hits_form)
