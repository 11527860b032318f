"""The term-memory router: confidence guards, shared terms, hysteresis."""

from __future__ import annotations

from kernel.frames import TermHit
from retriever.term_router import RouterParams, Slice, TermRouter

SLICES = [Slice("g-base", "base", base=True), Slice("g-nlp", "nlp"), Slice("g-cs", "cs")]
RATE = 16_000


def hit(glossary: str, term: str, second: float) -> TermHit:
    start = round(second * RATE)
    return TermHit(term, {}, 1.0, start, start + RATE // 2, glossary)


def router(**params: float | None) -> TermRouter:
    r = TermRouter(SLICES, RouterParams(**params))  # type: ignore[arg-type]
    r.register_terms("g-nlp", ["BLEU", "corpus", "model", "tokenizer"])
    r.register_terms("g-cs", ["compiler", "model", "kernel"])
    return r


def test_cold_start_reports_the_leading_domains_until_one_is_switched_on() -> None:
    r = router()
    assert r.reportable_ids() == ("g-base", "g-nlp", "g-cs")  # nothing heard yet
    assert r.observe(0, 2 * RATE, [hit("g-nlp", "BLEU", 1.0)]) is None
    assert r.reportable_ids() == ("g-base", "g-nlp")  # cs is behind the leader


def test_base_only_until_a_domain_has_enough_distinct_evidence() -> None:
    r = router(cold_start_share=None)
    assert r.reportable_ids() == ("g-base",)
    # The same acronym three times is one term (plus repeats at a quarter each).
    for i, second in enumerate((1.0, 5.0, 9.0)):
        assert r.observe(i, round((second + 1) * RATE), [hit("g-nlp", "BLEU", second)]) is None
    decision = r.observe(3, 14 * RATE, [hit("g-nlp", "corpus", 13.0)])
    assert decision is None  # 1.5 + 1 = 2.5 < 3 distinct terms
    decision = r.observe(4, 18 * RATE, [hit("g-nlp", "tokenizer", 17.0)])
    assert decision is not None and decision.switched_on == ("nlp",)
    assert decision.evidence == {"cs": 0.0, "nlp": 3.5}
    assert r.reportable_ids() == ("g-base", "g-nlp")


def test_a_term_both_domains_hold_is_split_and_a_close_race_stays_off() -> None:
    r = router()
    hits = [hit("g-nlp", "model", 1.0), hit("g-cs", "model", 1.0)]
    hits += [hit("g-nlp", "corpus", 3.0), hit("g-cs", "compiler", 5.0), hit("g-cs", "kernel", 7)]
    hits += [hit("g-nlp", "BLEU", 9.0), hit("g-nlp", "tokenizer", 11.0)]
    decision = r.observe(0, 12 * RATE, hits)
    # nlp 0.5 + 3 = 3.5, cs 0.5 + 2 = 2.5: the lead is under the 2x margin.
    assert decision is None
    assert r.evidence(12 * RATE) == {"cs": 2.5, "nlp": 3.5}
    # Neither is switched on; both stay reportable as cold-start leaders (2.5 ≥ 0.5 × 3.5).
    assert r.active_domains == ()
    assert r.reportable_ids() == ("g-base", "g-nlp", "g-cs")


def test_a_domain_goes_off_when_its_evidence_leaves_the_horizon() -> None:
    r = router(horizon_seconds=30.0)
    hits = [hit("g-nlp", t, s) for t, s in [("BLEU", 1), ("corpus", 2), ("tokenizer", 3)]]
    assert r.observe(0, 4 * RATE, hits) is not None
    assert r.observe(1, 20 * RATE, []) is None  # still within 30 s
    decision = r.observe(2, 40 * RATE, [])
    assert decision is not None and decision.switched_off == ("nlp",)
    assert r.active_domains == ()
