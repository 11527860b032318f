"""Candidate glossary terms from document text, by statistics alone (no model).

Candidates:

- phrases: runs of content words (no stopword, number or punctuation inside;
  hyphenated compounds are one word), every sub-phrase of up to ``max_words``
  words, grouped case-insensitively with the last word singularised;
- acronyms (BERT, mBERT, XLM-R, F1) and the expansions the text defines for
  them ("large language model (LLM)", see :mod:`glossary.extract.acronyms`);
- names: words capitalised in mid-sentence (Transformer, SMCalFlow).

Scores: every occurrence weighs ``title_weight``/``heading_weight``/1 by the
block it is in, times ``1 + position_bonus`` at the start of a document
falling linearly to 1 at its end (the title and abstract count most).
Nesting (after the C-value of Frantzi et al. 2000): a candidate loses
``nested_discount`` times the weight of the heaviest candidate one word
longer that contains it, and drops out when that one explains all but
``nested_floor`` of it, so "masked language" inside "masked language model"
and "lexical" inside "lexical borrowing" go while "embeddings" with several
different modifiers stays. The weight is multiplied by ``1 + log2(words)``
and by factors per kind (acronym, name, single word, defined, generic, seen
once). Output order is deterministic: score, then term.

Cost is linear in the text; on long texts only ``max_candidates`` distinct
word sequences are tracked and only the heaviest of the candidates seen once
are scored.

Why one module past 400 lines: candidate generation, scoring and the stop lists are one
ranking, tuned together; split, a change to one would hide its effect on the others.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from glossary.extract.acronyms import find_definitions, is_acronym
from glossary.extract.model import BlockKind, DocumentText
from glossary.extract.stopwords import GENERIC, STOPWORDS


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words: letters and digits, joined by inner hyphens or apostrophes ("task-oriented", "don't").
_TOKEN = re.compile(r"[^\W_](?:[^\W_]|['’\-‐‑](?=[^\W_]))*")
_POSSESSIVE = re.compile(r"['’]s$", re.I)
# Punctuation before a word that starts a sentence (its capital says nothing).
_SENTENCE_END = frozenset(".!?:;•▪●■◦*-–—")
# Words whose final -s is not a plural.
_KEEP_FINAL_S = _words(
    """bias alias atlas canvas gas lens news series species physics mathematics linguistics
    statistics semantics pragmatics economics ethics robotics genetics optics analytics
    logistics"""
)
_MAX_TOKEN_CHARS = 40
# Nouns ending in -ly (other -ly words are adverbs and end a phrase).
_LY_NOUNS = _words(
    "anomaly assembly family supply reply italy july monopoly butterfly ally rally poly"
)


class TermKind(StrEnum):
    ACRONYM = "acronym"
    NAME = "name"
    PHRASE = "phrase"
    WORD = "word"


@dataclass(frozen=True, slots=True)
class KeyphraseParams:
    max_terms: int = 50
    max_words: int = 4
    # Terms seen fewer times score rare_factor less, unless they are in a title
    # or heading or are defined acronyms.
    min_count: int = 2
    position_bonus: float = 1.0
    title_weight: float = 3.0
    heading_weight: float = 2.0
    acronym_factor: float = 2.0
    name_factor: float = 1.5
    word_factor: float = 0.6
    # Words and phrases ending in -ed: mostly participles ("annotated", "models trained").
    inflected_word_factor: float = 0.3
    defined_factor: float = 1.5
    # A phrase of generic words only ("language model", "test set").
    generic_phrase_factor: float = 0.5
    # Seen fewer than min_count times, outside titles and headings, not defined.
    rare_factor: float = 0.5
    # A candidate inside a longer one: the longer one's weight, times this, is
    # taken from it; dropped when the longer one explains all but nested_floor of it.
    nested_discount: float = 0.5
    nested_floor: float = 0.1
    # Characters of context on each side of the first occurrence.
    context_chars: int = 60
    # Distinct word sequences counted; beyond it only single words and phrases seen
    # before are (bounds memory on long texts without stopwords).
    max_candidates: int = 200_000


@dataclass(frozen=True, slots=True)
class Occurrence:
    file: str
    # 1-based page or slide; None for formats without pages.
    page: int | None
    # Character offset into the file's extracted text.
    offset: int
    context: str


@dataclass(frozen=True, slots=True)
class Keyphrase:
    term: str
    score: float
    count: int
    kind: TermKind
    first: Occurrence
    # The long form the documents give for an acronym.
    expansion: str | None = None


def extract_keyphrases(
    documents: Sequence[DocumentText], params: KeyphraseParams | None = None
) -> list[Keyphrase]:
    """The best ``params.max_terms`` candidates over all documents, best first."""
    params = params or KeyphraseParams()
    counter = _Counter(params)
    for index, document in enumerate(documents):
        counter.add_document(index, document)
    candidates = counter.candidates()
    for document in documents:
        for definition in find_definitions(document.text):
            _define(candidates, definition.acronym, definition.expansion, documents, params)
    ranked = _rank(candidates, params)
    return [_keyphrase(stats, documents, params) for stats in ranked[: params.max_terms]]


# -- internals -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Token:
    text: str
    lower: str
    start: int
    end: int
    # Sentence-initial or in a title/heading: its capitalisation says nothing.
    initial: bool
    # Has capital letters.
    cased: bool


@dataclass(slots=True)
class _Stats:
    """Everything counted about one candidate (a word sequence, later a group of variants)."""

    words: tuple[str, ...]
    # (document, block, start, end) of the first occurrence.
    first: tuple[int, int, int, int]
    count: int = 0
    weight: float = 0.0
    # Occurrences in lower case, and surface forms with capitals: in mid-sentence body
    # text ("plain") and anywhere. The form dicts stay None until a capital is seen.
    plain_lower: int = 0
    any_lower: int = 0
    plain_forms: dict[str, int] | None = None
    any_forms: dict[str, int] | None = None
    capitalised: int = 0
    in_title: bool = False
    defined: bool = False
    expansion: str | None = None
    key: str = ""
    score: float = 0.0
    kind: TermKind = TermKind.WORD


class _Counter:
    def __init__(self, params: KeyphraseParams) -> None:
        self.params = params
        self.grams: dict[tuple[str, ...], _Stats] = {}

    def add_document(self, index: int, document: DocumentText) -> None:
        params = self.params
        length = max(1, len(document.text))
        for block_index, block in enumerate(document.blocks):
            base = document.offsets[block_index]
            kind_weight = {
                BlockKind.TITLE: params.title_weight,
                BlockKind.HEADING: params.heading_weight,
            }.get(block.kind, 1.0)
            heading = block.kind is not BlockKind.BODY
            for run in _runs(block.text, heading):
                for start, end in _grams(run, params.max_words):
                    if end - start == 1 and _generic(run[start].lower):
                        continue
                    position = (base + run[start].start) / length
                    weight = kind_weight * (1.0 + params.position_bonus * (1.0 - position))
                    self._add(run[start:end], weight, index, block_index, heading)

    def _add(
        self, gram: list[_Token], weight: float, index: int, block_index: int, heading: bool
    ) -> None:
        words = tuple(t.lower for t in gram)
        stats = self.grams.get(words)
        if stats is None:
            if len(words) > 1 and len(self.grams) >= self.params.max_candidates:
                return  # memory bound: only phrases already seen are still counted
            first = (index, block_index, gram[0].start, gram[-1].end)
            stats = self.grams[words] = _Stats(words, first)
        stats.count += 1
        stats.weight += weight
        stats.in_title = stats.in_title or heading
        plain = not gram[0].initial
        if any(t.cased for t in gram):
            surface = " ".join(t.text for t in gram)
            stats.any_forms = _bump(stats.any_forms, surface)
            if plain:
                stats.plain_forms = _bump(stats.plain_forms, surface)
                if all(t.text[:1].isupper() for t in gram):
                    stats.capitalised += 1
        else:
            stats.any_lower += 1
            stats.plain_lower += plain

    def candidates(self) -> dict[str, _Stats]:
        """The counted sequences grouped by key (last word singular: "embedding(s)")."""
        out: dict[str, _Stats] = {}
        for stats in self.grams.values():
            key = _key(stats.words)
            kept = out.get(key)
            if kept is None:
                stats.key = key
                out[key] = stats
            else:
                _absorb(kept, stats)
        return out


def _bump(forms: dict[str, int] | None, surface: str, by: int = 1) -> dict[str, int]:
    forms = forms if forms is not None else {}
    forms[surface] = forms.get(surface, 0) + by
    return forms


def _fold_lower(stats: _Stats) -> None:
    """Move the lower-case counts into the form dicts (before merging different spellings)."""
    surface = " ".join(stats.words)
    if stats.plain_lower:
        stats.plain_forms = _bump(stats.plain_forms, surface, stats.plain_lower)
        stats.plain_lower = 0
    if stats.any_lower:
        stats.any_forms = _bump(stats.any_forms, surface, stats.any_lower)
        stats.any_lower = 0


def _absorb(kept: _Stats, other: _Stats) -> None:
    _fold_lower(kept)
    _fold_lower(other)
    kept.count += other.count
    kept.weight += other.weight
    kept.score += other.score
    kept.first = min(kept.first, other.first)
    for surface, n in (other.plain_forms or {}).items():
        kept.plain_forms = _bump(kept.plain_forms, surface, n)
    for surface, n in (other.any_forms or {}).items():
        kept.any_forms = _bump(kept.any_forms, surface, n)
    kept.capitalised += other.capitalised
    kept.in_title = kept.in_title or other.in_title
    kept.defined = kept.defined or other.defined
    kept.expansion = kept.expansion or other.expansion


def _define(
    candidates: dict[str, _Stats],
    acronym: str,
    expansion: str,
    documents: Sequence[DocumentText],
    params: KeyphraseParams,
) -> None:
    acronym_stats = candidates.get(_key((acronym.lower(),)))
    if acronym_stats is None or acronym_stats.expansion is not None:
        return
    acronym_stats.defined = True
    acronym_stats.expansion = expansion
    words = tuple(expansion.lower().split())
    stats = candidates.get(_key(words))
    if stats is None:
        # An expansion with a stopword inside ("... from Transformers"): count it here.
        stats = _count_phrase(expansion, words, documents, params)
        if stats is None:
            return
        candidates[stats.key] = stats
    stats.defined = True


def _count_phrase(
    phrase: str, words: tuple[str, ...], documents: Sequence[DocumentText], params: KeyphraseParams
) -> _Stats | None:
    pattern = re.compile(
        r"(?<!\w)" + r"\s+".join(re.escape(w) for w in phrase.split()) + r"(?!\w)", re.I
    )
    stats: _Stats | None = None
    for index, document in enumerate(documents):
        length = max(1, len(document.text))
        for block_index, block in enumerate(document.blocks):
            for match in pattern.finditer(block.text):
                if stats is None:
                    stats = _Stats(words, (index, block_index, *match.span()), key=_key(words))
                position = (document.offsets[block_index] + match.start()) / length
                stats.count += 1
                stats.weight += 1.0 + params.position_bonus * (1.0 - position)
                stats.plain_forms = _bump(stats.plain_forms, phrase)
                stats.any_forms = _bump(stats.any_forms, phrase)
    return stats


def _rank(candidates: dict[str, _Stats], params: KeyphraseParams) -> list[_Stats]:
    def eligible(stats: _Stats) -> bool:
        return stats.count >= params.min_count or stats.in_title or stats.defined

    retained = [s for s in candidates.values() if eligible(s)]
    # Of the candidates seen once, only the heaviest few can reach the output: score
    # just those (a long document has hundreds of thousands).
    once = [s for s in candidates.values() if not eligible(s)]
    spare = heapq.nsmallest(
        params.max_terms * 4, once, key=lambda s: (-s.weight * _acronym_bonus(s, params), s.key)
    )
    # Weights of the retained candidates one word longer that contain each candidate.
    containers: dict[str, list[float]] = {}
    for outer in retained:
        if len(outer.words) > 1:
            for inner in {_key(outer.words[:-1]), _key(outer.words[1:])}:
                containers.setdefault(inner, []).append(outer.weight)
    ranked: list[_Stats] = []
    for stats in (*retained, *spare):
        stats.kind = _kind(stats)
        nested = max(containers.get(stats.key, [0.0]))
        adjusted = stats.weight
        if stats.kind is not TermKind.ACRONYM:
            # Only ever part of one longer term ("masked language" in "masked
            # language model"): not a term of its own.
            if stats.weight - nested <= params.nested_floor * stats.weight and not stats.defined:
                continue
            adjusted -= params.nested_discount * nested
        factor = {
            TermKind.ACRONYM: params.acronym_factor,
            TermKind.NAME: params.name_factor,
            TermKind.WORD: params.word_factor,
        }.get(stats.kind, 1.0)
        if stats.kind in (TermKind.WORD, TermKind.PHRASE) and stats.key.endswith("ed"):
            # "annotated", "models trained": participles, not terms.
            factor *= params.inflected_word_factor
        if stats.defined:
            factor *= params.defined_factor
        if len(stats.words) > 1 and all(_generic(w) for w in stats.words):
            factor *= params.generic_phrase_factor
        length_factor = 1 + math.log2(len(stats.words))
        if not eligible(stats) and stats.kind is not TermKind.ACRONYM:
            # A long phrase seen once is mostly a chance sequence of words.
            factor *= params.rare_factor
            length_factor = 1.0
        stats.score = adjusted * length_factor * factor
        ranked.append(stats)
    ranked = _merge_spelling_variants(ranked)
    ranked.sort(key=lambda s: (-round(s.score, 6), s.key))
    return ranked


def _acronym_bonus(stats: _Stats, params: KeyphraseParams) -> float:
    if len(stats.words) == 1 and stats.any_forms and is_acronym(next(iter(stats.any_forms))):
        return params.acronym_factor
    return 1.0


def _keyphrase(
    stats: _Stats, documents: Sequence[DocumentText], params: KeyphraseParams
) -> Keyphrase:
    doc_index, block_index, start, end = stats.first
    document = documents[doc_index]
    block = document.blocks[block_index]
    return Keyphrase(
        term=_display(stats),
        score=round(stats.score, 4),
        count=stats.count,
        kind=stats.kind,
        first=Occurrence(
            file=document.filename,
            page=block.page,
            offset=document.offsets[block_index] + start,
            context=_context(block.text, start, end, params.context_chars),
        ),
        expansion=stats.expansion,
    )


def _runs(text: str, heading: bool) -> Iterator[list[_Token]]:
    """Maximal runs of content words, split at stopwords, numbers and punctuation."""
    run: list[_Token] = []
    previous_end = 0
    stop_next = False
    for match in _TOKEN.finditer(text):
        raw = match.group()
        gap = text[previous_end : match.start()]
        initial = heading or previous_end == 0 or _starts_sentence(gap)
        previous_end = match.end()
        stops_after = bool(_POSSESSIVE.search(raw))
        if stops_after:
            raw = _POSSESSIVE.sub("", raw)
        folded = raw.lower()
        lower = folded.replace("’", "'")
        if stop_next or gap.strip():
            if run:
                yield run
            run = []
        stop_next = stops_after
        if not _content(raw, lower):
            if run:
                yield run
            run = []
            continue
        end = match.start() + len(raw)
        run.append(_Token(raw, lower, match.start(), end, initial, cased=folded != raw))
    if run:
        yield run


def _starts_sentence(gap: str) -> bool:
    """Whether the word after ``gap`` (the text since the previous word) starts a sentence."""
    marks = gap.strip()
    if marks:
        return marks[-1] in _SENTENCE_END
    return "\n\n" in gap


def _grams(run: list[_Token], max_words: int) -> Iterator[tuple[int, int]]:
    for start in range(len(run)):
        for end in range(start + 1, min(len(run), start + max_words) + 1):
            yield start, end


def _content(raw: str, lower: str) -> bool:
    if lower in STOPWORDS or len(raw) > _MAX_TOKEN_CHARS:
        return False
    if lower.endswith("ly") and len(lower) > 4 and lower not in _LY_NOUNS:
        return False
    letters = sum(c.isalpha() for c in raw)
    if letters == 0:
        return False  # numbers, years, "3.5"
    return len(raw) > 1


def _generic(lower: str) -> bool:
    return lower in GENERIC or _singular(lower) in GENERIC


def _singular(word: str) -> str:
    if len(word) <= 3 or not word.endswith("s") or word in _KEEP_FINAL_S:
        return word
    if word.endswith(("ss", "us", "is", "ous")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes")):
        return word[:-2]
    return word[:-1]


def _key(words: tuple[str, ...]) -> str:
    return " ".join((*words[:-1], _singular(words[-1])))


def _loose(key: str) -> str:
    return re.sub(r"[\s\-‐‑'’]", "", key)


def _merge_spelling_variants(ranked: list[_Stats]) -> list[_Stats]:
    """ "pre-training", "pretraining" and "pre training" are one term: the best-scored one's."""
    best: dict[str, _Stats] = {}
    for stats in sorted(ranked, key=lambda s: (-s.score, s.key)):
        loose = _loose(stats.key)
        kept = best.get(loose)
        if kept is None:
            best[loose] = stats
        else:
            _absorb(kept, stats)
    return list(best.values())


def _kind(stats: _Stats) -> TermKind:
    form = _preferred(stats, plain=True) or _preferred(stats, plain=False) or stats.key
    if len(stats.words) == 1 and is_acronym(form):
        return TermKind.ACRONYM
    mid_sentence = stats.plain_lower + sum((stats.plain_forms or {}).values())
    if mid_sentence and stats.capitalised * 5 >= mid_sentence * 3:
        return TermKind.NAME
    return TermKind.PHRASE if len(stats.words) > 1 else TermKind.WORD


def _display(stats: _Stats) -> str:
    form = _preferred(stats, plain=True)
    if form is not None:
        return form
    # Seen only at sentence starts or in headings: lower-case the title-case words.
    form = _preferred(stats, plain=False) or stats.key
    return " ".join(w.lower() if w[:1].isupper() and w[1:].islower() else w for w in form.split())


def _preferred(stats: _Stats, *, plain: bool) -> str | None:
    """The most frequent surface form; on a tie the lower-case one, then the first in order."""
    forms = dict((stats.plain_forms if plain else stats.any_forms) or {})
    lower = stats.plain_lower if plain else stats.any_lower
    if lower:
        surface = " ".join(stats.words)
        forms[surface] = forms.get(surface, 0) + lower
    if not forms:
        return None
    return min(forms.items(), key=lambda item: (-item[1], item[0] != item[0].lower(), item[0]))[0]


def _context(text: str, start: int, end: int, chars: int) -> str:
    left = max(0, start - chars)
    right = min(len(text), end + chars)
    if left > 0:
        space = text.find(" ", left, start)
        left = space + 1 if space >= 0 else left
    if right < len(text):
        space = text.rfind(" ", end, right)
        right = space if space >= 0 else right
    snippet = " ".join(text[left:right].split())
    return ("…" if left > 0 else "") + snippet + ("…" if right < len(text) else "")
