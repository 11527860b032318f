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
from dataclasses import dataclass, field
from enum import StrEnum

from evaluation.dataset import match_tokens
from kernel.frames import TermHits
from training.chunking import GoldOccurrence, PlannedChunk
from training.patterns import Pattern


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


# -- the release's SFT recipe ("cap16 denoise budget") --------------------------


@dataclass(frozen=True, slots=True)
class ReleaseRecipe:
    """The term_map recipe of the released speech LLMs (``--preset release``).

    Per chunk, instead of a pattern: a budget drawn from ``budgets`` with
    ``weights``; a chunk with gold terms keeps all of them (the budget grows to
    fit them) plus retrieved noise; a chunk without gold gets an empty map with
    probability ``no_gold_empty``, else at most ``no_gold_max`` noise terms.
    Each retrieved non-gold term (the best ``cap``, in score order) survives
    with a probability by its score band, or ``keep_supported`` when its
    translation occurs in the conversation's answers from this chunk on (the
    model will say it anyway). Over budget, noise is dropped from the end;
    gold terms the retriever missed go to random positions.
    """

    budgets: tuple[int, ...] = (6, 8, 10)
    weights: tuple[float, ...] = (0.45, 0.35, 0.20)
    no_gold_empty: float = 0.35
    no_gold_max: int = 4
    low_cutoff: float = 0.82
    mid_cutoff: float = 0.85
    keep_low: float = 0.25
    keep_mid: float = 0.60
    keep_high: float = 0.90
    keep_supported: float = 0.85
    keep_unscored: float = 0.50
    min_target_chars: int = 2
    # Retrieved candidates considered per chunk (the release's cap16 branch), and
    # the most entries a map may hold.
    cap: int = 16

    def __post_init__(self) -> None:
        if len(self.budgets) != len(self.weights) or not self.budgets:
            raise ValueError("budgets and weights must be non-empty and of equal length")
        if min(self.budgets) < 1 or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ValueError("budgets must be positive and weights non-negative")
        if self.low_cutoff > self.mid_cutoff:
            raise ValueError("low_cutoff must not exceed mid_cutoff")


class NoiseBand(StrEnum):
    SUPPORTED = "supported"
    UNSCORED = "unscored"
    LOW = "low"
    MID = "mid"
    HIGH = "high"


def noise_band(score: float | None, supported: bool, recipe: ReleaseRecipe) -> NoiseBand:
    if supported:
        return NoiseBand.SUPPORTED
    if score is None:
        return NoiseBand.UNSCORED
    if score < recipe.low_cutoff:
        return NoiseBand.LOW
    if score < recipe.mid_cutoff:
        return NoiseBand.MID
    return NoiseBand.HIGH


def keep_probability(band: NoiseBand, recipe: ReleaseRecipe) -> float:
    return {
        NoiseBand.SUPPORTED: recipe.keep_supported,
        NoiseBand.UNSCORED: recipe.keep_unscored,
        NoiseBand.LOW: recipe.keep_low,
        NoiseBand.MID: recipe.keep_mid,
        NoiseBand.HIGH: recipe.keep_high,
    }[band]


@dataclass(slots=True)
class RecipeDraw:
    """What the recipe drew for one chunk (for the build statistics)."""

    budget: int = 0
    has_gold: bool = False
    emptied: bool = False
    offered: dict[str, int] = field(default_factory=dict)  # noise band -> candidates
    kept: dict[str, int] = field(default_factory=dict)  # noise band -> survived the draw


def _supported(target: str, future_text: str, min_chars: int) -> bool:
    needle = target.strip()
    return len("".join(needle.split())) >= min_chars and needle in future_text


def compose_release_term_map(
    chunk: PlannedChunk,
    retrieved: Sequence[TermMapEntry] | None,
    future_text: str,
    recipe: ReleaseRecipe,
    rng: random.Random,
) -> tuple[list[TermMapEntry], RecipeDraw]:
    """The chunk's term_map by the release's recipe, and what was drawn.

    ``retrieved`` is :func:`classify_hits`' output (best first; None without the
    retriever: gold terms only); ``future_text`` the reference answers of this
    chunk and the later chunks of its conversation.
    """
    gold: dict[tuple[str, ...], TermMapEntry] = {}
    for g in chunk.gold:
        key = term_key(g.source)
        if key and g.target and key not in gold:
            gold[key] = TermMapEntry(g.source, g.target, EntryKind.GOLD, EntryOrigin.GOLD)
    draw = RecipeDraw(has_gold=bool(gold))
    budget = rng.choices(recipe.budgets, weights=recipe.weights, k=1)[0]
    if gold:
        limit = max(budget, len(gold))
    else:
        if rng.random() < recipe.no_gold_empty:
            draw.budget, draw.emptied = min(budget, recipe.no_gold_max), True
            return [], draw
        limit = min(budget, recipe.no_gold_max)
    draw.budget = limit
    combined: list[TermMapEntry] = []
    seen: set[tuple[str, ...]] = set()
    candidates = [e for e in (retrieved or ()) if e.served][: recipe.cap]
    for entry in candidates:
        key = term_key(entry.source)
        if not key or not entry.target or key in seen:
            continue
        seen.add(key)
        if key in gold:
            known = gold[key]
            combined.append(
                TermMapEntry(
                    known.source, known.target, EntryKind.GOLD, EntryOrigin.RETRIEVER, entry.score
                )
            )
            continue
        band = noise_band(
            entry.score, _supported(entry.target, future_text, recipe.min_target_chars), recipe
        )
        draw.offered[band.value] = draw.offered.get(band.value, 0) + 1
        if rng.random() <= keep_probability(band, recipe):
            draw.kept[band.value] = draw.kept.get(band.value, 0) + 1
            combined.append(entry)
    for key, entry in gold.items():
        if key not in seen:
            combined.insert(rng.randint(0, len(combined)), entry)
            seen.add(key)
    # Over budget: noise goes, from the end; gold always stays.
    index = len(combined) - 1
    while len(combined) > limit and index >= 0:
        if combined[index].kind is not EntryKind.GOLD:
            combined.pop(index)
        index -= 1
    return combined[: max(recipe.cap, len(gold))], draw
