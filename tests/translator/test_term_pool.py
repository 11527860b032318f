"""Which retrieved terms a text-tier turn offers: everything since the last turn, and
terms not yet said for one more turn."""

from __future__ import annotations

from server.translator.term_pool import TermPool
from tests.translator.fakes import hits

WISDOM = ("age of wisdom", {"de": "Zeitalter der Weisheit"}, 0.9)
HOPE = ("spring of hope", {"de": "Frühling der Hoffnung"}, 0.8)


def test_a_turn_offers_the_terms_of_every_chunk_since_the_last_turn() -> None:
    pool = TermPool(max_terms=10)
    pool.add(hits(0, WISDOM))
    pool.add(hits(1))  # nothing retrieved: nothing added
    pool.add(hits(2, HOPE))
    offered = pool.offer("it was the age of wisdom and the spring of hope", 2)
    assert offered.term_map("de") == [
        ("age of wisdom", "Zeitalter der Weisheit"),
        ("spring of hope", "Frühling der Hoffnung"),
    ]
    assert pool.offer("nothing", 3).hits == (), "both were said: offered once"


def test_a_term_not_yet_said_stays_on_offer_for_one_more_turn() -> None:
    pool = TermPool(max_terms=10, segments=2)
    pool.add(hits(0, WISDOM, HOPE))
    pool.offer("it was the age of wisdom", 0)
    assert [h.source for h in pool.offer("it was the spring", 1).hits] == ["spring of hope"]
    assert pool.offer("of hope", 2).hits == (), "offered twice, then dropped"


def test_the_offer_is_capped_best_first() -> None:
    pool = TermPool(max_terms=1)
    pool.add(hits(0, HOPE))
    pool.add(hits(1, WISDOM))
    assert [h.source for h in pool.offer("", 1).hits] == ["age of wisdom"]
