"""Zero-setup sessions: routed term memory against the hand-picked glossary, on ACL talks.

Term memory: a base slice (general vocabulary: random 1–3-word CMU-dictionary phrases) and
domain slices: ``nlp`` (the RASST ACL tagged glossary, de pairs), ``covid`` (TICO-19),
``cs`` (CJK computer-science terms) and two distractor slices of dictionary phrases. Each of
the 5 ACL 60/60 dev talks is one session: its first ``--per-talk`` segments that hold
glossary terms, synthesised with flite (one voice per run), decoded by the gateway's
Whisper front end (cached like bench/retrieval_quick.py; both arms use the same decodes,
biased toward the NLP glossary), in talk order, with the router's state carried from
segment to segment. Hand-picked arm: the session's glossary is the NLP glossary. Auto arm:
every slice is searched, terms are reported from the base slice and the routed ones.

    python bench/term_memory.py --voice slt --per-talk 12 --jobs 2
    python bench/term_memory.py --voice awb --per-talk 12 --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import random
import time

from bench.retrieval_quick import (
    DATA,
    PIECE,
    _decode,
    load_glossary,
    merged,
    score,
    term_span,
)
from glossary.model import GlossaryEntry, GlossarySnapshot
from retriever.aggregate import AggregationParams
from retriever.index import IndexManager, IndexParams
from retriever.phonetic import PhoneticTermEncoder
from retriever.pronounce import cmu_dictionary
from retriever.term_router import RouterParams, Slice, TermRouter
from retriever.word_evidence import TextMatchers, WordEvidenceRetriever, WordRetrievalParams


def _tsv_terms(name: str, column: str = "en") -> list[str]:
    with open(DATA / "glossaries" / name, encoding="utf-8") as f:
        return [r[column] for r in csv.DictReader(f, delimiter="\t") if r.get(column)]


def _dictionary_phrases(n: int, seed: int) -> list[str]:
    words = sorted(w for w in cmu_dictionary() if w.isalpha() and len(w) > 3)
    rng = random.Random(seed)
    out = [" ".join(rng.choice(words) for _ in range(rng.choice((1, 2, 2, 3)))) for _ in range(n)]
    return list(dict.fromkeys(out))


def _snapshot(gid: str, terms: list[str]) -> GlossarySnapshot:
    entries = tuple(GlossaryEntry(t, {"de": (t,)}) for t in dict.fromkeys(terms))
    return GlossarySnapshot(gid, 1, "bench", gid, "en", entries)


def term_memory(nlp: list[tuple[str, str]]) -> tuple[list[GlossarySnapshot], list[Slice]]:
    nlp_snap = GlossarySnapshot(
        "nlp", 1, "bench", "nlp", "en", tuple(GlossaryEntry(en, {"de": (de,)}) for en, de in nlp)
    )
    snaps = [
        nlp_snap,
        _snapshot("base", _dictionary_phrases(2_000, seed=1)),
        _snapshot("covid", _tsv_terms("tico19_covid_terms_en_de_zh_ja.tsv")),
        _snapshot("cs", _tsv_terms("cjk_compsci_terms_en_zh_ja.tsv")),
        _snapshot("misc-a", _dictionary_phrases(5_000, seed=2)),
        _snapshot("misc-b", _dictionary_phrases(5_000, seed=3)),
    ]
    slices = [Slice("base", "base", base=True)] + [
        Slice(s.id, s.id) for s in snaps if s.id != "base"
    ]
    return snaps, slices


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voice", default="slt")
    ap.add_argument("--model", default="base")
    ap.add_argument("--per-talk", type=int, default=12)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--lm", type=int, default=2)
    ap.add_argument("--tau", type=float, default=0.85)
    args = ap.parse_args()

    from server.asr.hotwords import hotwords_for

    nlp = load_glossary("de")
    known = {en.lower() for en, _ in nlp}
    snaps, slices = term_memory(nlp)
    hotwords = hotwords_for([snaps[0]])
    manager = IndexManager(PhoneticTermEncoder(), IndexParams())
    for s in snaps:
        manager.update(s).result()
    matchers = TextMatchers()

    with open(DATA / "acl6060" / "dev.en-de.jsonl", encoding="utf-8") as f:
        all_rows = [json.loads(line) for line in f]
    talks: dict[str, list[dict]] = {}
    for r in all_rows:
        if any(t["en"].lower() in known for t in r["terms"]):
            talks.setdefault(r["talk_id"], [])
            if len(talks[r["talk_id"]]) < args.per_talk:
                talks[r["talk_id"]].append(r)
    rows = [r for talk in talks.values() for r in talk]
    jobs = [(r["en"], args.voice, args.model, hotwords) for r in rows]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        decoded = pool.map(_decode, jobs, chunksize=1)
    gold: list[tuple[int, str, int, int]] = []
    for s, row in enumerate(rows):
        for term in sorted({t["en"].lower() for t in row["terms"]} & known):
            span = term_span(row["en"], term, args.voice)
            if span is not None:
                gold.append((s, term, span[0] // PIECE, max(span[1] - 1, 0) // PIECE))

    params = WordRetrievalParams(AggregationParams(tau=args.tau))
    routes: list[dict[str, object]] = []

    def run(auto: bool) -> list[list[list[tuple[str, float]]]]:
        out: list[list[list[tuple[str, float]]]] = []
        router: TermRouter | None = None
        talk = None
        offset = 0
        for row, (pieces, _) in zip(rows, decoded, strict=True):
            if row["talk_id"] != talk:  # a new talk is a new session
                talk, offset = row["talk_id"], 0
                router = TermRouter(slices, RouterParams())
                for s in snaps:
                    router.register_terms(s.id, (e.source for e in s.entries))
            ids = [s.id for s in snaps] if auto else ["nlp"]
            retriever = WordEvidenceRetriever(manager, matchers, ids, ["de"], params)
            per_chunk: list[list[tuple[str, float]]] = []
            for c in range(0, len(pieces), args.lm):
                assert router is not None
                if auto:
                    retriever.set_reporting(router.reportable_ids())
                group = pieces[c : c + args.lm]
                final_words, partial = merged(group)
                start = c * PIECE
                hits = retriever.process(
                    c // args.lm,
                    start,
                    start + PIECE * len(group),
                    final_words,
                    partial,
                    final=c + args.lm >= len(pieces),
                )
                if auto:
                    decision = router.observe(
                        c // args.lm, offset + start + PIECE * len(group), retriever.evidence
                    )
                    if decision is not None:
                        routes.append(
                            {
                                "talk": talk,
                                "segment": row["seg_id"],
                                "on": decision.switched_on,
                                "off": decision.switched_off,
                                "evidence": decision.evidence,
                                "confidence": decision.confidence,
                            }
                        )
                per_chunk.append([(h.source.lower(), h.score) for h in hits.hits])
            offset += len(pieces) * PIECE
            out.append(per_chunk)
        return out

    t0 = time.perf_counter()
    hand = score(rows, gold, run(False), args.lm, args.tau)
    auto = score(rows, gold, run(True), args.lm, args.tau)
    result = {
        "voice": args.voice,
        "talks": len(talks),
        "segments": len(rows),
        "gold_occurrences": len(gold),
        "hand_picked": {k: hand[k] for k in ("recall@10", "precision_gold", "precision_spoken")},
        "auto": {k: auto[k] for k in ("recall@10", "precision_gold", "precision_spoken")},
        "routes": routes,
        "wall_s": round(time.perf_counter() - t0, 1),
        "load": os.getloadavg(),
    }
    print(json.dumps(result, indent=1))
    manager.close()


if __name__ == "__main__":
    main()
