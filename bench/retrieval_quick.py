"""Quick end-to-end check of the embedded retriever on synthesised ACL 60/60 dev speech.

Each dev segment is synthesised with flite (cached under .cache/bench_tts/),
streamed through phone decoding → windows → phonetic FAISS index → alignment
re-scoring → aggregation in chunks of 0.96·lm s, against the RASST tagged
glossary (de pairs) plus optional distractor terms. A gold term occurrence
counts as found when it is in the top 10 of the chunk where it ends ("strict"),
or of that chunk or the next ("late ok": the window holding a term that ends
near a chunk boundary completes in the next chunk). Term end times come from
synthesising the sentence prefix up to the term.

    python bench/retrieval_quick.py --segments 40 --lm 2 --distractors 0

flite speech is easy for pocketsphinx (and the glossary pronunciations are not
flite's own here), so treat the numbers as an upper-ish bound; see
shared/notes/cpu-retrieval-findings.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import subprocess
import time
import wave
from pathlib import Path

import numpy as np

from glossary.model import GlossaryEntry, GlossarySnapshot
from retriever.aggregate import AggregationParams
from retriever.chunk_retriever import ChunkRetriever, RetrievalParams
from retriever.embedded import PhoneticRescorer, PhoneticSpeechEncoder
from retriever.index import IndexManager, IndexParams
from retriever.phonetic import PhoneticTermEncoder
from retriever.pronounce import cmu_dictionary

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".cache" / "bench_tts"
RATE = 16_000


def synthesise(text: str, voice: str) -> np.ndarray:
    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(f"{voice}\0{text}".encode()).hexdigest()[:16]
    path = CACHE / f"{voice}-{key}.wav"
    if not path.exists():
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def speech_end(pcm: np.ndarray) -> int:
    """Last sample above a low energy floor (flite appends silence)."""
    frames = len(pcm) // 160
    energy = np.abs(pcm[: frames * 160].astype(np.int32)).reshape(frames, 160).mean(axis=1)
    loud = np.nonzero(energy > 300)[0]
    return int((loud[-1] + 1) * 160) if len(loud) else 0


def load_glossary(lang: str) -> list[tuple[str, str]]:
    path = DATA / "glossaries" / "rasst_acl_tagged_pairs_observed.tsv"
    pairs: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["lang"] == lang:
                pairs.setdefault(row["en"], row["tgt"])
    return list(pairs.items())


def distractors(n: int, exclude: set[str], seed: int = 0) -> list[str]:
    """Other real glossaries first, then random 1–3-word dictionary phrases."""
    out: list[str] = []
    for name in ("rasst_acl_paper_extracted.tsv", "tico19_covid_terms_en_de_zh_ja.tsv",
                 "cjk_compsci_terms_en_zh_ja.tsv"):  # fmt: skip
        with open(DATA / "glossaries" / name, encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                term = row.get("en") or row.get("source") or ""
                if term and term.lower() not in exclude:
                    out.append(term)
    words = [w for w in cmu_dictionary() if w.isalpha() and len(w) > 3]
    rng = random.Random(seed)
    while len(out) < n:
        out.append(" ".join(rng.choice(words) for _ in range(rng.choice((1, 2, 2, 3)))))
    return list(dict.fromkeys(out))[:n]


def term_end(text: str, term: str, voice: str) -> int | None:
    """Sample where ``term`` ends in the synthesised ``text`` (prefix synthesis)."""
    match = re.search(r"\b" + re.escape(term) + r"\b", text, flags=re.IGNORECASE)
    if match is None:
        return None
    return speech_end(synthesise(text[: match.end()], voice))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=40)
    ap.add_argument("--lm", type=int, default=2)
    ap.add_argument("--voice", default="slt")
    ap.add_argument("--distractors", type=int, default=0)
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--tau", type=float, default=0.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    glossary = load_glossary("de")
    extra = (
        distractors(args.distractors, {en.lower() for en, _ in glossary})
        if args.distractors
        else []
    )
    entries = tuple(GlossaryEntry(en, {"de": (tgt,)}) for en, tgt in glossary) + tuple(
        GlossaryEntry(t, {"de": (t,)}) for t in extra
    )
    snap = GlossarySnapshot("acl", 1, "bench", "acl", "en", entries)
    known = {e.source.lower() for e in entries[: len(glossary)]}

    manager = IndexManager(PhoneticTermEncoder(), IndexParams())
    t0 = time.perf_counter()
    index = manager.update(snap).result()
    build_s = time.perf_counter() - t0

    with open(DATA / "acl6060" / "dev.en-de.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    rows = [r for r in rows if any(t["en"].lower() in known for t in r["terms"])][: args.segments]
    size = 15_360 * args.lm
    params = RetrievalParams(AggregationParams(tau=args.tau), candidates=args.candidates)
    encoder = PhoneticSpeechEncoder()
    total = strict = late = anywhere = 0
    audio_s = cpu_s = 0.0
    retrieval_wall: list[float] = []
    misses: list[str] = []
    for row in rows:
        pcm = synthesise(row["en"], args.voice)
        stream = encoder.open_stream()
        retriever = ChunkRetriever(stream, manager, ["acl"], ["de"], params=params,
                                   rescorer=PhoneticRescorer())  # fmt: skip
        started = time.process_time()
        per_chunk: list[set[str]] = []
        for i, start in enumerate(range(0, len(pcm), size)):
            hits = retriever.process(i, start, pcm[start : start + size],
                                     final=start + size >= len(pcm))  # fmt: skip
            retrieval_wall.append(hits.elapsed)
            per_chunk.append({h.source.lower() for h in hits.hits})
        cpu_s += time.process_time() - started
        audio_s += len(pcm) / RATE
        for term in {t["en"].lower() for t in row["terms"]} & known:
            end = term_end(row["en"], term, args.voice)
            if end is None:
                continue
            c = min(max(end - 1, 0) // size, len(per_chunk) - 1)
            total += 1
            strict += term in per_chunk[c]
            ok = term in per_chunk[c] or (c + 1 < len(per_chunk) and term in per_chunk[c + 1])
            late += ok
            anywhere += any(term in s for s in per_chunk)
            if not ok:
                misses.append(term)
    manager.close()
    result = {
        "segments": len(rows),
        "lm": args.lm,
        "voice": args.voice,
        "glossary_terms": len(entries),
        "index_vectors": index.n_vectors,
        "index_kind": index.kind,
        "index_build_s": round(build_s, 2),
        "gold_occurrences": total,
        "recall@10_strict": round(strict / max(total, 1), 3),
        "recall@10_late_ok": round(late / max(total, 1), 3),
        "recall@10_segment": round(anywhere / max(total, 1), 3),
        "cpu_s_per_audio_s": round(cpu_s / max(audio_s, 1e-9), 3),
        "retrieval_wall_ms_p50": round(1000 * float(np.median(retrieval_wall)), 1),
        "retrieval_wall_ms_p95": round(1000 * float(np.percentile(retrieval_wall, 95)), 1),
        "audio_s": round(audio_s, 1),
        "misses": sorted(set(misses))[:40],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
