"""End-to-end check of the embedded retriever on synthesised ACL 60/60 dev speech.

Each dev segment with a glossary term is synthesised with flite (cached under
.cache/bench_tts/) and decoded by the gateway's own speech front end
(:class:`server.asr.front_end.SpeechFrontEnd`: silero VAD + Whisper, with the
glossary's hotwords), fed in 0.48 s slices with a revisable decode after each,
as a live session that keeps up is. The slices' analyses are then merged into
chunks of 0.96·lm s and scored by
:class:`retriever.word_evidence.WordEvidenceRetriever` (windows → phonetic FAISS
candidates → alignment re-scoring, plus exact word matches → aggregation, once
per occurrence) against the RASST tagged glossary (de pairs), plus optional
distractor terms (other glossaries, then random 1–3-word CMU-dictionary
phrases), as they would be in a real upload.

A gold occurrence is found (recall@10) when the term is in the top 10 of a
chunk it is spoken in or of the next one (a word is heard whole only after it
ends); "strict" asks for the chunk where it ends. Where a term is spoken comes
from flite's own segment times (``-psdur``) for the sentence. Precision at
τ: reported (chunk, term) pairs whose term is a gold term of the segment
("gold") or whose text occurs in the segment's English ("spoken"; the gold
annotation misses some spoken terms).

    python bench/retrieval_quick.py --segments 100 --distractors 0 --jobs 2
    python bench/retrieval_quick.py --voice awb --model base --no-hotwords
    python bench/retrieval_quick.py --index-sizes 1000,10000,100000

flite speech is synthetic; compare voices (slt, awb, rms, kal16) before trusting
a number.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import multiprocessing
import pickle
import random
import re
import resource
import subprocess
import time
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glossary.model import GlossaryEntry, GlossarySnapshot
from kernel.frames import ChunkAnalysis, RecognizedWord
from retriever.aggregate import AggregationParams
from retriever.index import IndexManager, IndexParams
from retriever.phonetic import PhoneticTermEncoder
from retriever.pronounce import cmu_dictionary
from retriever.word_evidence import TextMatchers, WordEvidenceRetriever, WordRetrievalParams

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / ".cache"
RATE = 16_000
PIECE = 15_360  # 0.96 s: chunks are lm pieces
SLICE = 7_680  # 0.48 s: the front end's cadence in a session


def synthesise(text: str, voice: str) -> np.ndarray:
    tts = CACHE / "bench_tts"
    tts.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(f"{voice}\0{text}".encode()).hexdigest()[:16]
    path = tts / f"{voice}-{key}.wav"
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


@functools.cache
def phone_ends(text: str, voice: str) -> tuple[float, ...]:
    """End times (s) of the phones flite speaks for ``text``, pauses left out."""
    out = subprocess.run(
        ["flite", "-voice", voice, "-psdur", "-t", text, "-o", "none"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    ends = []
    for item in out.split():
        phone, _, end = item.rpartition(":")
        if phone and phone != "pau":
            ends.append(float(end))
    return tuple(ends)


def term_span(text: str, term: str, voice: str) -> tuple[int, int] | None:
    """Samples where ``term`` starts and ends in the synthesised ``text``.

    flite's own segment times for the whole sentence, at the phones that end the
    prefixes before and up to the term (a synthesised prefix would end later:
    its last word gets sentence-final lengthening).
    """
    match = re.search(r"\b" + re.escape(term) + r"\b", text, flags=re.IGNORECASE)
    if match is None:
        return None
    full = phone_ends(text, voice)
    before = len(phone_ends(text[: match.start()], voice)) if match.start() else 0
    upto = len(phone_ends(text[: match.end()], voice))
    if not full or upto == 0:
        return None
    start = full[min(before, len(full)) - 1] if before else 0.0
    return round(start * RATE), round(full[min(upto, len(full)) - 1] * RATE)


def glossary_snapshot(n_distractors: int) -> tuple[GlossarySnapshot, int]:
    glossary = load_glossary("de")
    extra = distractors(n_distractors, {en.lower() for en, _ in glossary}) if n_distractors else []
    entries = tuple(GlossaryEntry(en, {"de": (tgt,)}) for en, tgt in glossary) + tuple(
        GlossaryEntry(t, {"de": (t,)}) for t in extra
    )
    return GlossarySnapshot("acl", 1, "bench", "acl", "en", entries), len(glossary)


# -- decoding (worker processes) ------------------------------------------------------


_RECOGNIZER = None


def _decode(job: tuple[str, str, str, str]) -> tuple[list[ChunkAnalysis], float]:
    """Front-end analyses of one synthesised segment, one per 0.96 s piece, and CPU s."""
    from server.asr.front_end import FrontEndParams, SliceIn, SpeechFrontEnd, default_vad_factory
    from server.asr.models import AsrModelParams, load_model
    from server.asr.recognizer import DecodeParams, WhisperRecognizer

    global _RECOGNIZER
    text, voice, model, hotwords = job
    # Decoding dominates; keep it between runs that share text, voice, model and hotwords.
    settings = f"{FrontEndParams()!r}{DecodeParams()!r}"
    key = f"{text}\0{voice}\0{model}\0{hotwords}\0{settings}"
    key = hashlib.sha1(key.encode()).hexdigest()[:20]
    cached = CACHE / "bench_decode" / f"{key}.pkl"
    if cached.exists():
        with open(cached, "rb") as f:
            result: tuple[list[ChunkAnalysis], float] = pickle.load(f)
        return result
    if _RECOGNIZER is None:
        _RECOGNIZER = WhisperRecognizer(load_model(AsrModelParams(model=model)))
    pcm = synthesise(text, voice)
    front = SpeechFrontEnd(FrontEndParams(), default_vad_factory(), _RECOGNIZER)
    front.set_hotwords(hotwords)
    started = time.process_time()
    slices = []
    for i, start in enumerate(range(0, len(pcm), SLICE)):
        final = start + SLICE >= len(pcm)
        slices += front.process([SliceIn(i // 2, start, pcm[start : start + SLICE], final)])
    # One analysis per 0.96 s piece: final words of both slices, the open utterance's
    # newest revisable words (dropped once its final words arrive).
    out = []
    partial: tuple[RecognizedWord, ...] = ()
    for p in range(0, len(slices), 2):
        pair = slices[p : p + 2]
        words = tuple(w for a in pair for w in a.words)
        for a in pair:
            if a.words:
                partial = ()
            if a.partial_words:
                partial = a.partial_words
        speech = sum(a.speech_samples for a in pair)
        out.append(ChunkAnalysis(p // 2, speech, words=words, partial_words=partial))
    result = (out, time.process_time() - started)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with open(cached, "wb") as f:
        pickle.dump(result, f)
    return result


def merged(pieces: Sequence[ChunkAnalysis]) -> tuple[list[RecognizedWord], list[RecognizedWord]]:
    final = [w for p in pieces for w in p.words]
    return final, list(pieces[-1].partial_words)


# -- main benchmark ---------------------------------------------------------------------


def run_quality(args: argparse.Namespace) -> dict[str, object]:
    snap, n_gold_terms = glossary_snapshot(args.distractors)
    known = {e.source.lower() for e in snap.entries[:n_gold_terms]}
    from server.asr.hotwords import hotwords_for

    hotwords = "" if args.no_hotwords else hotwords_for([snap])

    manager = IndexManager(PhoneticTermEncoder(), IndexParams())
    t0 = time.perf_counter()
    index = manager.update(snap).result()
    index_build_s = time.perf_counter() - t0
    matchers = TextMatchers()

    with open(DATA / "acl6060" / "dev.en-de.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    rows = [r for r in rows if any(t["en"].lower() in known for t in r["terms"])][: args.segments]
    jobs = [(r["en"], args.voice, args.model, hotwords) for r in rows]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        decoded = pool.map(_decode, jobs, chunksize=1)
    decode_cpu = sum(cpu for _, cpu in decoded)
    audio_s = sum(len(synthesise(r["en"], args.voice)) / RATE for r in rows)
    # Gold occurrences: (segment, term, 0.96 s pieces where the term starts and ends).
    gold: list[tuple[int, str, int, int]] = []
    for s, row in enumerate(rows):
        for term in sorted({t["en"].lower() for t in row["terms"]} & known):
            span = term_span(row["en"], term, args.voice)
            if span is not None:
                gold.append((s, term, span[0] // PIECE, max(span[1] - 1, 0) // PIECE))

    # A session retrieves at one tau, and reports each occurrence once at that tau:
    # every tau is its own run over the same decoded words.
    taus = args.taus
    results: dict[str, object] = {}
    for lm in args.lms:
        retrieval_cpu = 0.0
        walls: list[float] = []
        sweep = []
        for tau in taus:
            # per segment: list of chunk hit lists [(term, score)]
            chunk_hits: list[list[list[tuple[str, float]]]] = []
            for pieces, _ in decoded:
                retriever = WordEvidenceRetriever(
                    manager,
                    matchers,
                    ["acl"],
                    ["de"],
                    WordRetrievalParams(AggregationParams(tau=tau), candidates=args.candidates),
                )
                per_chunk: list[list[tuple[str, float]]] = []
                for c in range(0, len(pieces), lm):
                    group = pieces[c : c + lm]
                    final_words, partial = merged(group)
                    start = c * PIECE
                    started = time.process_time()
                    hits = retriever.process(
                        c // lm,
                        start,
                        start + PIECE * len(group),
                        final_words,
                        partial,
                        final=c + lm >= len(pieces),
                    )
                    if tau == taus[0]:
                        retrieval_cpu += time.process_time() - started
                        walls.append(hits.elapsed)
                    per_chunk.append([(h.source.lower(), h.score) for h in hits.hits])
                chunk_hits.append(per_chunk)
            sweep.append(score(rows, gold, chunk_hits, lm, tau))
        results[f"lm{lm}"] = {
            "retrieval_cpu_s_per_audio_s": round(retrieval_cpu / max(audio_s, 1e-9), 4),
            "retrieval_wall_ms_p50": round(1000 * float(np.median(walls)), 2),
            "retrieval_wall_ms_p95": round(1000 * float(np.percentile(walls, 95)), 2),
            "sweep": sweep,
        }
    manager.close()
    return {
        "segments": len(rows),
        "voice": args.voice,
        "model": args.model,
        "hotwords": not args.no_hotwords,
        "glossary_terms": len(snap.entries),
        "index_vectors": index.n_vectors,
        "index_kind": index.kind,
        "index_build_s": round(index_build_s, 2),
        "gold_occurrences": len(gold),
        "audio_s": round(audio_s, 1),
        "front_end_cpu_s_per_audio_s": round(decode_cpu / max(audio_s, 1e-9), 3),
        **results,
    }


def score(
    rows: list[dict],
    gold: list[tuple[int, str, int, int]],
    chunk_hits: list[list[list[tuple[str, float]]]],
    lm: int,
    tau: float,
) -> dict[str, object]:
    """Recall (timing tolerances) and precision of one run at one tau.

    recall@10: reported in a chunk the term is spoken in, or in the next one (a
    word is heard whole only after it ends); strict: in the chunk where it ends.
    """
    strict = timely = anywhere = 0
    misses: list[str] = []
    for s, term, first_piece, last_piece in gold:
        chunks = chunk_hits[s]

        def reported(i: int, term: str = term, chunks: list = chunks) -> bool:
            return 0 <= i < len(chunks) and any(t == term and sc >= tau for t, sc in chunks[i])

        first = min(first_piece // lm, len(chunks) - 1)
        last = min(last_piece // lm, len(chunks) - 1)
        strict += reported(last)
        ok = any(reported(i) for i in range(first, last + 2))
        timely += ok
        anywhere += any(reported(i) for i in range(len(chunks)))
        if not ok:
            misses.append(term)
    reported = correct_gold = correct_spoken = 0
    for s, chunks in enumerate(chunk_hits):
        gold_terms = {t["en"].lower() for t in rows[s]["terms"]}
        text = rows[s]["en"].lower()
        for hits in chunks:
            for term, sc in hits:
                if sc < tau:
                    continue
                reported += 1
                correct_gold += term in gold_terms
                correct_spoken += bool(re.search(r"\b" + re.escape(term) + r"\b", text))
    return {
            "tau": tau,
            "recall@10": round(timely / max(len(gold), 1), 3),
            "recall@10_strict": round(strict / max(len(gold), 1), 3),
            "recall@10_any_chunk": round(anywhere / max(len(gold), 1), 3),
            "precision_gold": round(correct_gold / max(reported, 1), 3),
            "precision_spoken": round(correct_spoken / max(reported, 1), 3),
            "hits_per_chunk": round(reported / max(sum(map(len, chunk_hits)), 1), 2),
            "misses": sorted(set(misses))[:30],
        }


def run_index(sizes: Sequence[int], queries: int) -> dict[str, object]:
    """Index build time, memory and single-window query latency per glossary size."""
    out: dict[str, object] = {}
    encoder = PhoneticTermEncoder()
    rng = np.random.default_rng(0)
    for n in sizes:
        snap, _ = glossary_snapshot(max(0, n - 233))
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        manager = IndexManager(encoder, IndexParams())
        t0 = time.perf_counter()
        index = manager.update(snap).result()
        build = time.perf_counter() - t0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        vectors = encoder.encode_phone_sequences(
            [
                [p for e in rng.choice(len(snap.entries), 4) for p in ("AH", "N", "T")]
                for _ in range(queries)
            ]  # fmt: skip
        )
        lat = []
        for q in vectors:
            t = time.perf_counter()
            index.search(q[None, :], 100)
            lat.append(time.perf_counter() - t)
        out[str(n)] = {
            "terms": len(snap.entries),
            "vectors": index.n_vectors,
            "kind": index.kind,
            "build_s": round(build, 2),
            "faiss_bytes": int(index.n_vectors * encoder.dim * 4),
            "max_rss_growth_mb": round((rss1 - rss0) / 1024, 1),
            "search_ms_p50": round(1000 * float(np.median(lat)), 3),
            "search_ms_p95": round(1000 * float(np.percentile(lat, 95)), 3),
        }
        manager.close()
        print(json.dumps({str(n): out[str(n)]}), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=100)
    ap.add_argument("--lms", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3, 4])
    ap.add_argument("--voice", default="slt")
    ap.add_argument("--distractors", type=int, default=0)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument(
        "--taus", type=lambda s: [float(x) for x in s.split(",")], default=[0.6, 0.7, 0.8, 0.9]
    )
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--model", default="tiny.en", help="RASST_ASR_MODEL")
    ap.add_argument("--no-hotwords", action="store_true", help="no glossary biasing")
    ap.add_argument("--index-sizes", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = run_index(args.index_sizes, args.queries) if args.index_sizes else run_quality(args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
