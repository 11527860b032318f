"""Glossary index at scale: build time, memory, query latency and recall loss, 10k–1M terms.

Terms: the 238-term RASST ACL glossary plus random 1–3-word CMU-dictionary phrases up to
N (bench/retrieval_quick.py's distractors). Queries: for every gold term occurrence of the
ACL 60/60 dev set (de), a window of the three words before the term, the term and the
three words after, as dictionary phones (what the retriever builds from Whisper's words).
Recall: the gold term among the top 10 after the alignment re-scoring of the index's 100
candidates, for the index the manager builds (phone-trigram from 2k terms) and for an
exact (flat) search over the n-gram vectors.

    python bench/index_scale.py --sizes 10000,100000,1000000

Each size runs in its own process (cold caches, like a fresh upload); build time is
"upload to searchable" inside IndexManager (pronunciations + index), after the CMU
dictionary and letter-to-sound model are loaded (~1 s once per process).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

# The spawned workers import bench.* helpers: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(n: int, exact: bool, gram_min_terms: int) -> dict[str, object]:
    import faiss

    from bench.retrieval_quick import DATA, distractors, load_glossary
    from glossary.model import GlossaryEntry, GlossarySnapshot
    from retriever.index import IndexManager, IndexParams
    from retriever.phonetic import PhoneticTermEncoder, phone_ids, rescore_terms
    from retriever.pronounce import cmu_dictionary, letter_to_sound
    from retriever.word_evidence import word_phones

    faiss.omp_set_num_threads(1)
    cmu_dictionary()
    letter_to_sound()
    gl = [en for en, _ in load_glossary("de")]
    terms = gl + distractors(n - len(gl), {t.lower() for t in gl})
    snap = GlossarySnapshot(
        "g", 1, "bench", "g", "en", tuple(GlossaryEntry(t, {"de": (t,)}) for t in terms)
    )
    rss0 = _rss_mb()
    manager = IndexManager(
        PhoneticTermEncoder(), IndexParams(use_gpu=False, gram_min_terms=gram_min_terms)
    )
    t0 = time.perf_counter()
    index = manager.update(snap).result()
    build_s = time.perf_counter() - t0
    rss_growth = _rss_mb() - rss0

    seqs: list[list[str]] = []
    gold: list[int] = []
    position = {t: i for i, t in enumerate(terms)}
    with open(DATA / "acl6060" / "dev.en-de.jsonl", encoding="utf-8") as f:
        for line in f:
            seg = json.loads(line)
            for term in sorted({t["en"] for t in seg["terms"]}):
                m = re.search(r"\b" + re.escape(term) + r"\b", seg["en"], re.I)
                if m is None or term not in position:
                    continue
                before = seg["en"][: m.start()].split()[-3:]
                after = seg["en"][m.end() :].split()[:3]
                words = [*before, *term.split(), *after]
                seqs.append([p for w in words for p in word_phones(w)])
                gold.append(position[term])
    queries = [phone_ids(s) for s in seqs]

    def recall(ids_per_query: list[list[int]], variants) -> float:  # type: ignore[no-untyped-def]
        hits = 0
        for q, ids, g in zip(queries, ids_per_query, gold, strict=True):
            scores = rescore_terms(q, [variants(t) for t in ids])
            top = [ids[i] for i in np.argsort(-scores, kind="stable")[:10]]
            hits += g in top
        return hits / len(gold)

    from retriever.gram_index import PhoneGramIndex
    from retriever.phonetic import term_phone_ids

    latencies = []
    found: list[list[int]] = []
    for q, s in zip(queries, seqs, strict=True):
        started = time.perf_counter()
        if isinstance(index, PhoneGramIndex):
            result = index.search_phones([q], 100)
        else:
            result = index.search(PhoneticTermEncoder().encode_phone_sequences([s]), 100)
        latencies.append(time.perf_counter() - started)
        found.append([int(t) for t in result.term_ids[0] if t >= 0])
    variants = (
        index.variants
        if isinstance(index, PhoneGramIndex)
        else (lambda t: term_phone_ids(terms[t]))
    )
    out: dict[str, object] = {
        "terms": n,
        "kind": index.kind,
        "build_s": round(build_s, 2),
        "index_mb": round(index.nbytes / 1e6, 1) if isinstance(index, PhoneGramIndex) else None,
        "rss_growth_mb": round(rss_growth, 1),
        "query_ms_p50": round(1000 * float(np.percentile(latencies, 50)), 2),
        "query_ms_p95": round(1000 * float(np.percentile(latencies, 95)), 2),
        "queries": len(queries),
        "recall@10": round(recall(found, variants), 4),
        "load": os.getloadavg(),
    }
    if exact:
        encoder = PhoneticTermEncoder()
        flat = faiss.IndexFlatIP(encoder.dim)
        for part in encoder.encode_terms_batches(terms):
            flat.add(part.vectors)
        from retriever.phonetic import term_sequences

        _, owners = term_sequences(terms)
        _, rows = flat.search(encoder.encode_phone_sequences(seqs), 300)
        exact_ids = []
        for r in rows:
            ids = list(dict.fromkeys(int(owners[x]) for x in r if x >= 0))[:100]
            exact_ids.append(ids)
        out["exact_flat_recall@10"] = round(
            recall(exact_ids, lambda t: term_phone_ids(terms[t])), 4
        )
        out["exact_flat_mb"] = round(flat.ntotal * encoder.dim * 4 / 1e6, 1)
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    manager.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--no-exact", action="store_true")
    ap.add_argument("--gram-min-terms", type=int, default=2_000)
    args = ap.parse_args()
    ctx = multiprocessing.get_context("spawn")
    for n in (int(s) for s in args.sizes.split(",")):
        with ctx.Pool(1) as pool:
            print(
                json.dumps(pool.apply(run, (n, not args.no_exact, args.gram_min_terms))), flush=True
            )


if __name__ == "__main__":
    main()
