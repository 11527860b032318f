"""Chunk aggregation: top-K1 per window, max per term, τ, top-K2, translation filter."""

from __future__ import annotations

import numpy as np

from glossary.model import GlossaryEntry, GlossarySnapshot
from retriever.aggregate import AggregationParams, WindowCandidates, aggregate_chunk
from retriever.windows import Window

from .helpers import snapshot

W1, W2 = Window(0, 100), Window(50, 150)


def cands(
    window: Window, snap: GlossarySnapshot, pairs: list[tuple[int, float]]
) -> WindowCandidates:
    ids = np.array([p[0] for p in pairs], dtype=np.int64)
    scores = np.array([p[1] for p in pairs], dtype=np.float32)
    return WindowCandidates(window, snap, ids, scores)


def test_max_score_per_term_over_windows_keeps_the_best_span() -> None:
    snap = snapshot(["a", "b", "c"])
    hits = aggregate_chunk(
        7,
        [cands(W1, snap, [(0, 0.5), (1, 0.9)]), cands(W2, snap, [(0, 0.8), (2, 0.1)])],
        ["de"],
        elapsed=0.25,
    )
    assert hits.chunk_index == 7 and hits.elapsed == 0.25
    assert [(h.source, round(h.score, 2)) for h in hits.hits] == [
        ("b", 0.9),
        ("a", 0.8),
        ("c", 0.1),
    ]
    a = hits.hits[1]
    assert (a.start_sample, a.end_sample, a.glossary_id, a.targets) == (
        50,
        150,
        "g",
        {"de": "a-de"},
    )


def test_top_k1_per_window_before_the_max() -> None:
    snap = snapshot([f"t{i}" for i in range(5)])
    # In W1 term 4 is 3rd: cut by K1 = 2; it is not rescued by anything else.
    window = cands(W1, snap, [(0, 0.9), (1, 0.8), (4, 0.7)])
    hits = aggregate_chunk(0, [window], ["de"], AggregationParams(k1=2, k2=10))
    assert [h.source for h in hits.hits] == ["t0", "t1"]


def test_threshold_and_top_k2() -> None:
    snap = snapshot([f"t{i}" for i in range(6)])
    window = cands(W1, snap, [(i, 0.9 - 0.1 * i) for i in range(6)])
    params = AggregationParams(k1=10, k2=3, tau=0.75)
    assert [h.source for h in aggregate_chunk(0, [window], ["de"], params).hits] == ["t0", "t1"]
    params = AggregationParams(k1=10, k2=3, tau=0.0)
    assert [h.source for h in aggregate_chunk(0, [window], ["de"], params).hits] == [
        "t0",
        "t1",
        "t2",
    ]


def test_terms_without_a_target_translation_are_dropped() -> None:
    entries = (
        GlossaryEntry("only-ja", {"ja": ("X",)}),
        GlossaryEntry("de-and-zh", {"de": ("D",), "zh": ("Z",)}),
        GlossaryEntry("empty-de", {"de": ()}),
    )
    snap = GlossarySnapshot("g", 1, "t", "n", "en", entries)
    window = cands(W1, snap, [(0, 0.9), (1, 0.8), (2, 0.7)])
    hits = aggregate_chunk(0, [window], ["de", "zh"]).hits
    assert [(h.source, h.targets) for h in hits] == [("de-and-zh", {"de": "D", "zh": "Z"})]
    assert aggregate_chunk(0, [window], ["fr"]).hits == ()


def test_glossaries_are_merged_and_k1_spans_them() -> None:
    g1, g2 = snapshot(["a", "b"], gid="g1"), snapshot(["a", "z"], gid="g2")
    found = [cands(W1, g1, [(0, 0.6), (1, 0.5)]), cands(W1, g2, [(0, 0.7), (1, 0.65)])]
    hits = aggregate_chunk(0, found, ["de"], AggregationParams(k1=3)).hits
    assert [(h.glossary_id, h.source) for h in hits] == [("g2", "a"), ("g2", "z"), ("g1", "a")]
    # term_map de-duplicates by source, best first.
    assert aggregate_chunk(0, found, ["de"]).term_map("de")[:2] == [("a", "a-de"), ("z", "z-de")]


def test_padding_and_empty_input() -> None:
    snap = snapshot(["a"])
    window = cands(W1, snap, [(-1, float("-inf")), (0, 0.3)])
    assert [h.source for h in aggregate_chunk(0, [window], ["de"]).hits] == ["a"]
    assert aggregate_chunk(3, [], ["de"]).hits == ()


def test_ties_keep_the_earlier_window() -> None:
    snap = snapshot(["a"])
    hits = aggregate_chunk(0, [cands(W2, snap, [(0, 0.5)]), cands(W1, snap, [(0, 0.5)])], ["de"])
    assert hits.hits[0].start_sample == W1.start


def test_equal_scores_rank_the_most_recent_term_first() -> None:
    # Regression: with a big glossary many exact matches tie at 1.0; K2 must keep
    # the ones said in this chunk over the look-back's repeats.
    snap = snapshot([f"t{i}" for i in range(12)])
    old = [cands(Window(0, 100 + i), snap, [(i, 1.0)]) for i in range(11)]
    new = cands(Window(5_000, 6_000), snap, [(11, 1.0)])
    hits = aggregate_chunk(0, [*old, new], ["de"])
    assert len(hits.hits) == 10
    assert hits.hits[0].source == "t11"
