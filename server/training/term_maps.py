"""One chunk's term_map for a pattern: gold terms, the retriever's hits, glossary negatives.

The retriever's hits for a chunk fall in three groups:

* **gold**: a gold term of the chunk (its translation is the gold one, as the reference
  uses it);
* **correct**: not a gold term of this chunk, but spoken around it (its source occurs in
  the text spoken within the retriever's look-back, or it is gold in a neighbouring chunk
  — a late or early hit). Right entries, kept in ``standard``, never used as "wrong";
* **negative**: everything else — a term the retriever heard that was not said. These are
  the hard negatives.

``standard`` = gold + correct + negatives; ``none`` = nothing; ``all_wrong`` = negatives
only. Without the retriever (``--no-retriever``), negatives are glossary entries sampled
at random whose source is not spoken nearby; with it, an ``all_wrong`` chunk for which the
retriever returned no negative is topped up the same way (one to ``glossary_negatives``
entries), so every ``all_wrong`` turn really has a term_map. Every entry records where it
came from.

Order is the retriever's (best score first); gold terms the retriever missed are put at
random positions, so position says nothing about correctness. The map is capped at
``max_entries`` (gold kept first, then correct, then the best negatives).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from server.evaluation.dataset import match_tokens
from server.frames import TermHits
from server.training.chunking import GoldOccurrence, PlannedChunk
from server.training.patterns import Pattern


class EntryKind(StrEnum):
    GOLD = "gold"
    CORRECT = "correct"
    NEGATIVE = "negative"


class EntryOrigin(StrEnum):
    GOLD = "gold"  # from the corpus annotation (not retrieved)
    RETRIEVER = "retriever"
    GLOSSARY = "glossary"  # sampled from the glossary


@dataclass(frozen=True, slots=True)
class TermMapEntry:
    source: str
    target: str
    kind: EntryKind
    origin: EntryOrigin
    score: float | None = None
    # False for a negative the retriever scored below the serving threshold (mined).
    served: bool = True


_SUFFIXES = ("ing", "ed", "es", "s", "e")


def _stem(token: str) -> str:
    """A crude English stem: "models"/"model", "proposed"/"propose" compare equal."""
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            return token[: -len(suffix)]
    return token


def term_key(text: str) -> tuple[str, ...]:
    """How terms are compared here: stemmed word tokens (inflection and case ignored)."""
    return tuple(_stem(t) for t in match_tokens(text))


def spoken_in(term: str, text: str) -> bool:
    """Whether ``term`` (in any inflection) is said in ``text``."""
    needle, hay = term_key(term), term_key(text)
    n = len(needle)
    return n > 0 and any(hay[i : i + n] == needle for i in range(len(hay) - n + 1))


@dataclass(frozen=True, slots=True)
class TermMapParams:
    max_entries: int = 16
    # Mined negatives (retrieved below the serving threshold, not said) added per chunk:
    # the best 0..N in standard, 1..N in all_wrong (N drawn per chunk).
    mined_negatives: int = 3
    # Negatives sampled from the glossary per chunk (without the retriever: 0..N in
    # standard, 1..N in all_wrong; with it: the all_wrong top-up, 1..N).
    glossary_negatives: int = 3


def classify_hits(
    hits: TermHits,
    chunk: PlannedChunk,
    neighbour_gold: Sequence[GoldOccurrence],
    lang: str,
    serving_tau: float = 0.0,
) -> list[TermMapEntry]:
    """The chunk's retrieved terms with their kind, best first (one per source).

    Hits scored below ``serving_tau`` (serving would not show them) are kept only when
    they are wrong: hard negatives mined a little below the threshold.
    """
    gold = {term_key(g.source): g for g in chunk.gold}
    near = {term_key(g.source) for g in neighbour_gold}
    entries: list[TermMapEntry] = []
    seen: set[tuple[str, ...]] = set()
    for source, target in hits.term_map(lang):
        key = term_key(source)
        if key in gold and key in seen:
            continue  # "model" and "models" both hit a gold "models": one gold entry
        seen.add(key)
        score = next(h.score for h in hits.hits if h.source == source)
        if score < serving_tau and (key in gold or key in near or spoken_in(source, chunk.context)):
            continue
        if key in gold:
            g = gold[key]
            entries.append(
                TermMapEntry(g.source, g.target, EntryKind.GOLD, EntryOrigin.RETRIEVER, score)
            )
        elif key in near or spoken_in(source, chunk.context):
            entries.append(
                TermMapEntry(source, target, EntryKind.CORRECT, EntryOrigin.RETRIEVER, score)
            )
        else:
            entries.append(
                TermMapEntry(
                    source,
                    target,
                    EntryKind.NEGATIVE,
                    EntryOrigin.RETRIEVER,
                    score,
                    served=score >= serving_tau,
                )
            )
    return entries


def sample_glossary_negatives(
    glossary: Sequence[tuple[str, str]],
    chunk: PlannedChunk,
    neighbour_gold: Sequence[GoldOccurrence],
    count: int,
    rng: random.Random,
    exclude: set[tuple[str, ...]],
) -> list[TermMapEntry]:
    """``count`` glossary entries not spoken near the chunk (fewer if the glossary runs out)."""
    banned = exclude | {term_key(g.source) for g in (*chunk.gold, *neighbour_gold)}
    picked: list[TermMapEntry] = []
    for index in rng.sample(range(len(glossary)), len(glossary)):
        if len(picked) >= count:
            break
        source, target = glossary[index]
        key = term_key(source)
        if not key or key in banned or spoken_in(source, chunk.context):
            continue
        banned.add(key)
        picked.append(TermMapEntry(source, target, EntryKind.NEGATIVE, EntryOrigin.GLOSSARY))
    return picked


def _with_mined_budget(
    retrieved: list[TermMapEntry], pattern: Pattern, params: TermMapParams, rng: random.Random
) -> list[TermMapEntry]:
    """Served entries, plus the best mined negatives up to a budget drawn for the chunk."""
    mined = [e for e in retrieved if not e.served]
    if not mined:
        return retrieved
    low = 1 if pattern is Pattern.ALL_WRONG else 0
    budget = rng.randint(min(low, params.mined_negatives), params.mined_negatives)
    keep = {id(e) for e in mined[:budget]}
    return [e for e in retrieved if e.served or id(e) in keep]


def compose_term_map(
    pattern: Pattern,
    chunk: PlannedChunk,
    retrieved: Sequence[TermMapEntry] | None,
    neighbour_gold: Sequence[GoldOccurrence],
    glossary: Sequence[tuple[str, str]],
    params: TermMapParams,
    rng: random.Random,
) -> list[TermMapEntry]:
    """The chunk's term_map for ``pattern``; ``retrieved`` is None without the retriever."""
    if pattern is Pattern.NONE:
        return []
    with_retriever = retrieved is not None
    retrieved = _with_mined_budget(list(retrieved or []), pattern, params, rng)
    if pattern is Pattern.ALL_WRONG:
        wrong = [e for e in retrieved if e.kind is EntryKind.NEGATIVE]
        if not wrong:
            count = rng.randint(1, max(1, params.glossary_negatives))
            wrong = sample_glossary_negatives(glossary, chunk, neighbour_gold, count, rng, set())
        return wrong[: params.max_entries]
    # Standard: every gold term, what the retriever returned, glossary negatives without it.
    by_source = {term_key(e.source): e for e in retrieved}
    missed_gold = []
    for g in chunk.gold:
        key = term_key(g.source)
        if key not in by_source:
            entry = TermMapEntry(g.source, g.target, EntryKind.GOLD, EntryOrigin.GOLD)
            by_source[key] = entry
            missed_gold.append(entry)
    ranked = [e for e in retrieved if e.kind is not EntryKind.NEGATIVE]
    negatives = [e for e in retrieved if e.kind is EntryKind.NEGATIVE]
    if not with_retriever and params.glossary_negatives > 0:
        count = rng.randint(0, params.glossary_negatives)
        negatives = sample_glossary_negatives(
            glossary, chunk, neighbour_gold, count, rng, set(by_source)
        )
    # Cap: gold first, then correct, then negatives (each group best first).
    priority = (
        missed_gold
        + [e for e in ranked if e.kind is EntryKind.GOLD]
        + [e for e in ranked if e.kind is EntryKind.CORRECT]
        + negatives
    )
    kept = set(map(id, priority[: params.max_entries]))
    ordered = [e for e in retrieved if id(e) in kept] + [
        e for e in negatives if id(e) in kept and e.origin is EntryOrigin.GLOSSARY
    ]
    for entry in missed_gold:
        if id(entry) in kept:
            ordered.insert(rng.randint(0, len(ordered)), entry)
    return ordered
