"""Term-bearing training audio synthesised with a local TTS (flite), for domain adaptation.

For each glossary term: sentences that contain it (from ``--sentences``, e.g.
the ACL 60/60 dev English, one sentence per line) or, failing that, template
sentences. Each sentence is synthesised in three pieces — the text before the
term, the term, the text after — and joined with short pauses, so the term's
start and end are known exactly without a forced aligner. The output is WAV
files plus a JSONL in the trainer's format (:mod:`retriever.neural.data`) with
the term's word times.

flite sounds robotic; the pieces' prosody is not a natural sentence's. The data
teaches the retriever the *vocabulary* of a domain, to mix with real speech.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retriever.neural.data import SAMPLE_RATE, Record, TermSpan, read_wav, write_jsonl, write_wav

TEMPLATES: tuple[str, ...] = (
    "Today I want to talk about {term} and why it matters.",
    "In this work we rely on {term} for every experiment.",
    "The main idea behind {term} is surprisingly simple.",
    "As you can see, {term} improves the results on both tasks.",
    "We compare our approach with {term} in the next table.",
    "Let me briefly explain how {term} works.",
    "Our system uses {term} at every step.",
    "Many people ask me about {term}.",
    "This slide summarises {term} in one picture.",
    "Without {term}, the model makes many more mistakes.",
)


class SynthesisError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class BuildParams:
    out: Path
    per_term: int = 3
    voice: str = "slt"
    pause_seconds: float = 0.08
    seed: int = 0
    flite: str = "flite"


def load_terms(path: Path) -> list[str]:
    """Source terms of a glossary file (CSV/TSV/JSON/TBX/TMX), or one term per line (.txt)."""
    path = Path(path)
    if path.suffix.lower() in (".txt", ".lst"):
        from retriever.neural.data import iter_bank

        return list(dict.fromkeys(iter_bank(path)))
    from glossary.formats import parse_glossary
    from glossary.formats.base import ParseOptions

    parsed = parse_glossary(path.read_bytes(), ParseOptions(), filename=path.name)
    return list(dict.fromkeys(e.source for e in parsed.entries))


def synthesize(text: str, voice: str = "slt", flite: str = "flite") -> np.ndarray:
    """16 kHz float32 speech for ``text`` (empty text: no samples)."""
    if not text.strip():
        return np.zeros(0, dtype=np.float32)
    exe = shutil.which(flite)
    if exe is None:
        raise SynthesisError(f"{flite!r} is not installed (Debian: apt-get install flite)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        proc = subprocess.run(
            [exe, "-voice", voice, "-t", text, "-o", str(out)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0 or not out.is_file():
            raise SynthesisError(
                f"flite failed on {text!r}: {proc.stderr.decode(errors='replace')[:200]}"
            )
        return read_wav(out)


def trim_silence(audio: np.ndarray, threshold: float = 0.01, frame: int = 160) -> np.ndarray:
    """Drop leading and trailing 10 ms frames whose peak is below ``threshold``."""
    if len(audio) < frame:
        return audio
    n = len(audio) // frame
    peaks = np.abs(audio[: n * frame]).reshape(n, frame).max(axis=1)
    loud = np.nonzero(peaks >= threshold)[0]
    if len(loud) == 0:
        return audio[:0]
    return audio[loud[0] * frame : min(len(audio), (loud[-1] + 1) * frame)]


def find_term(sentence: str, term: str) -> tuple[int, int] | None:
    """Character span of ``term`` in ``sentence`` (case-insensitive, whole words)."""
    m = re.search(rf"(?<!\w){re.escape(term)}(?!\w)", sentence, flags=re.IGNORECASE)
    return (m.start(), m.end()) if m else None


def sentences_for(term: str, corpus: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    found = [s for s in corpus if find_term(s, term)]
    rng.shuffle(found)
    picked = found[:n]
    templates = list(TEMPLATES)
    rng.shuffle(templates)
    for template in templates[: n - len(picked)]:
        picked.append(template.format(term=term))
    return picked


def build_utterance(
    sentence: str, term: str, params: BuildParams
) -> tuple[np.ndarray, float, float]:
    """Audio of ``sentence`` and the term's (start, end) in seconds."""
    span = find_term(sentence, term)
    if span is None:
        raise ValueError(f"{term!r} does not occur in {sentence!r}")
    before, said, after = sentence[: span[0]], sentence[span[0] : span[1]], sentence[span[1] :]
    pause = np.zeros(int(params.pause_seconds * SAMPLE_RATE), dtype=np.float32)
    head = trim_silence(synthesize(before, params.voice, params.flite))
    body = trim_silence(synthesize(said, params.voice, params.flite))
    tail = trim_silence(synthesize(after, params.voice, params.flite))
    if len(body) == 0:
        raise SynthesisError(f"flite produced silence for {said!r}")
    lead = np.zeros(int(0.2 * SAMPLE_RATE), dtype=np.float32)
    parts = [lead, head, pause] if len(head) else [lead]
    start = sum(len(p) for p in parts) / SAMPLE_RATE
    parts += [body]
    end = sum(len(p) for p in parts) / SAMPLE_RATE
    parts += [pause, tail, lead] if len(tail) else [lead]
    return np.concatenate(parts), start, end


def build_dataset(
    terms: Iterable[str],
    params: BuildParams,
    corpus: Sequence[str] = (),
    jsonl_name: str = "train.jsonl",
) -> Path:
    """Synthesise ``per_term`` utterances per term; returns the JSONL path."""
    rng = np.random.default_rng(params.seed)
    audio_dir = params.out / "audio"
    records: list[Record] = []
    for t_index, term in enumerate(dict.fromkeys(t.strip() for t in terms if t.strip())):
        for s_index, sentence in enumerate(sentences_for(term, corpus, params.per_term, rng)):
            audio, start, end = build_utterance(sentence, term, params)
            path = audio_dir / f"t{t_index:05d}_{s_index:02d}.wav"
            write_wav(path, audio)
            records.append(
                Record(
                    path,
                    (TermSpan(term, start, end),),
                    0.0,
                    len(audio) / SAMPLE_RATE,
                    id=f"tts-{t_index}-{s_index}",
                )
            )
    out = params.out / jsonl_name
    write_jsonl(out, records)
    return out
