"""A chunk's term_map per pattern: what counts as gold, correct and wrong."""

from __future__ import annotations

import random

from kernel.frames import TermHit, TermHits
from training.chunking import GoldOccurrence, PlannedChunk
from training.patterns import Pattern
from training.term_maps import (
    EntryKind,
    EntryOrigin,
    TermMapParams,
    classify_hits,
    compose_term_map,
    spoken_in,
)

GLOSSARY = [
    ("BLEU", "BLEU"),
    ("model", "Modell"),
    ("models", "Modelle"),
    ("corpus", "Korpus"),
    ("decoder", "Decoder"),
    ("encoder", "Encoder"),
    ("attention", "Aufmerksamkeit"),
    ("dataset", "Datensatz"),
]


def _chunk(gold: list[tuple[str, str]], context: str) -> PlannedChunk:
    return PlannedChunk(
        index=3,
        start_sample=0,
        end_sample=30_720,
        translation="",
        source=context,
        gold=tuple(GoldOccurrence(s, t, 1.0) for s, t in gold),
        context=context,
        has_words=True,
    )


def _hits(*items: tuple[str, str, float]) -> TermHits:
    return TermHits(3, tuple(TermHit(s, {"de": t}, score, 0, 1, "g") for s, t, score in items))


def test_hits_are_gold_correct_or_negative() -> None:
    chunk = _chunk([("models", "Modelle")], "we released some models and a dataset")
    hits = _hits(
        ("model", "Modell", 0.99),  # inflection of the gold "models": that gold entry
        ("models", "Modelle", 0.97),  # the same term again: folded into it
        ("dataset", "Datensatz", 0.95),  # spoken but not annotated: correct
        ("decoder", "Decoder", 0.9),  # gold of the next chunk (an early hit): correct
        ("encoder", "Encoder", 0.85),  # not said anywhere: a hard negative
    )
    entries = classify_hits(hits, chunk, [GoldOccurrence("decoder", "Decoder", 2.0)], "de")
    kinds = [(e.source, e.target, e.kind) for e in entries]
    assert kinds == [
        ("models", "Modelle", EntryKind.GOLD),
        ("dataset", "Datensatz", EntryKind.CORRECT),
        ("decoder", "Decoder", EntryKind.CORRECT),
        ("encoder", "Encoder", EntryKind.NEGATIVE),
    ]
    assert all(e.origin is EntryOrigin.RETRIEVER for e in entries)
    assert spoken_in("propose", "the task we proposed") and not spoken_in("corpus", "corpora")


def test_patterns_from_retrieved_terms() -> None:
    chunk = _chunk([("BLEU", "BLEU"), ("corpus", "Korpus")], "BLEU on the corpus")
    retrieved = classify_hits(
        _hits(
            ("corpus", "Korpus", 0.95), ("encoder", "Encoder", 0.9), ("decoder", "Decoder", 0.85)
        ),
        chunk,
        [],
        "de",
    )
    params = TermMapParams(max_entries=16)

    def compose(pattern: Pattern, **kw: object) -> list[tuple[str, EntryKind, EntryOrigin]]:
        entries = compose_term_map(
            pattern,
            chunk,
            kw.get("retrieved", retrieved),
            [],
            GLOSSARY,  # type: ignore[arg-type]
            kw.get("params", params),
            random.Random(1),  # type: ignore[arg-type]
        )
        return [(e.source, e.kind, e.origin) for e in entries]

    standard = compose(Pattern.STANDARD)
    # Every gold term (BLEU was missed by the retriever: placed at a random position),
    # the retrieved negatives in the retriever's order.
    assert sorted(standard) == sorted(
        [
            ("BLEU", EntryKind.GOLD, EntryOrigin.GOLD),
            ("corpus", EntryKind.GOLD, EntryOrigin.RETRIEVER),
            ("encoder", EntryKind.NEGATIVE, EntryOrigin.RETRIEVER),
            ("decoder", EntryKind.NEGATIVE, EntryOrigin.RETRIEVER),
        ]
    )
    assert [s for s, _, _ in standard if s != "BLEU"] == ["corpus", "encoder", "decoder"]
    assert compose(Pattern.NONE) == []
    assert compose(Pattern.ALL_WRONG) == [
        ("encoder", EntryKind.NEGATIVE, EntryOrigin.RETRIEVER),
        ("decoder", EntryKind.NEGATIVE, EntryOrigin.RETRIEVER),
    ]
    # The cap keeps gold first, then the best negatives.
    capped = compose(Pattern.STANDARD, params=TermMapParams(max_entries=3))
    assert {s for s, _, _ in capped} == {"BLEU", "corpus", "encoder"}


def test_all_wrong_is_never_empty_and_never_spoken() -> None:
    chunk = _chunk([("BLEU", "BLEU")], "BLEU on the corpus with attention")
    for seed in range(20):
        entries = compose_term_map(
            Pattern.ALL_WRONG, chunk, [], [], GLOSSARY, TermMapParams(), random.Random(seed)
        )
        assert 1 <= len(entries) <= 3
        for e in entries:
            assert e.kind is EntryKind.NEGATIVE and e.origin is EntryOrigin.GLOSSARY
            assert not spoken_in(e.source, chunk.context)


def test_without_the_retriever_negatives_come_from_the_glossary() -> None:
    chunk = _chunk([("BLEU", "BLEU")], "BLEU is a metric")
    sizes = set()
    for seed in range(30):
        entries = compose_term_map(
            Pattern.STANDARD,
            chunk,
            None,
            [],
            GLOSSARY,
            TermMapParams(glossary_negatives=2),
            random.Random(seed),
        )
        gold = [e for e in entries if e.kind is EntryKind.GOLD]
        negatives = [e for e in entries if e.kind is EntryKind.NEGATIVE]
        assert [e.source for e in gold] == ["BLEU"]
        assert all(e.origin is EntryOrigin.GLOSSARY for e in negatives)
        sizes.add(len(negatives))
    assert sizes == {0, 1, 2}


def test_hits_below_the_serving_threshold_are_kept_only_when_wrong() -> None:
    chunk = _chunk([("corpus", "Korpus")], "BLEU on the corpus")
    hits = _hits(
        ("corpus", "Korpus", 0.95),
        ("encoder", "Encoder", 0.9),
        ("BLEU", "BLEU", 0.6),  # spoken, but serving (tau 0.8) would not show it: dropped
        ("decoder", "Decoder", 0.55),  # wrong and below tau: a mined hard negative
    )
    entries = classify_hits(hits, chunk, [], "de", serving_tau=0.8)
    assert [(e.source, e.kind) for e in entries] == [
        ("corpus", EntryKind.GOLD),
        ("encoder", EntryKind.NEGATIVE),
        ("decoder", EntryKind.NEGATIVE),
    ]


def test_mined_negatives_are_added_within_a_budget() -> None:
    chunk = _chunk([("corpus", "Korpus")], "the corpus")
    hits = _hits(
        ("corpus", "Korpus", 0.95),
        ("encoder", "Encoder", 0.7),
        ("decoder", "Decoder", 0.65),
        ("attention", "Aufmerksamkeit", 0.6),
        ("dataset", "Datensatz", 0.55),
    )
    retrieved = classify_hits(hits, chunk, [], "de", serving_tau=0.8)
    assert [e.served for e in retrieved] == [True, False, False, False, False]
    standard, wrong = set(), set()
    for seed in range(40):
        params = TermMapParams(mined_negatives=2)
        entries = compose_term_map(
            Pattern.STANDARD, chunk, retrieved, [], GLOSSARY, params, random.Random(seed)
        )
        mined = [e.source for e in entries if not e.served]
        assert mined == ["encoder", "decoder"][: len(mined)]  # the best ones first
        standard.add(len(mined))
        entries = compose_term_map(
            Pattern.ALL_WRONG, chunk, retrieved, [], GLOSSARY, params, random.Random(seed)
        )
        assert all(
            e.kind is EntryKind.NEGATIVE and e.origin is EntryOrigin.RETRIEVER for e in entries
        )
        wrong.add(len(entries))
    assert standard == {0, 1, 2}
    assert wrong == {1, 2}
