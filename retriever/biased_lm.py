"""Glossary-biased word language models for the embedded speech front end.

Biasing pocketsphinx's word decoder toward the glossary is what makes the
embedded retriever work (term recall +25 points in the CPU prototype, see
shared/notes/cpu-retrieval-findings.md): the session's glossary words are added
to the dictionary with pronunciations (:mod:`retriever.pronounce`), their
unigrams are raised, and the bigrams inside multi-word terms get a floor, so
the decoder spells terms as the glossary does and captions improve too.

pocketsphinx 5.1.1 cannot write its default trigram model back out (the ARPA
writer crashes in the trigram section, and the values it does write are scaled
by a constant factor). So, once per machine, a child process dumps the default
model, and :func:`ensure_base_lm` keeps the unigram and bigram sections, with
the scale undone, as a clean bigram ARPA in the cache. Each glossary set then
gets a biased copy (:func:`build_biased_lm`), converted to pocketsphinx's binary
format, which a speech worker loads in milliseconds.

Everything here is blocking file work (seconds for the 2M-bigram base); the
gateway runs it in a separate builder process, never on the event loop or in
a speech worker.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from glossary.model import GlossarySnapshot
from retriever.pronounce import cmu_dictionary, tokens, word_pronunciations

_BASE_NAME = "base-bigram-v1.arpa"
_FORMAT = "biased-v1"
_LOG10_BASE = math.log10(1.0001)  # pocketsphinx's default log base


@dataclass(frozen=True, slots=True)
class BiasParams:
    # Raise glossary unigrams by this much (log10)...
    unigram_boost: float = 2.0
    # ...but keep the glossary's total unigram mass under this budget, so a huge
    # glossary (10k–100k terms) does not turn the whole vocabulary into "likely".
    unigram_budget: float = 0.1
    # Bigrams inside a multi-word term are raised to at least this (log10),
    # shared among a word's glossary continuations.
    bigram_floor: float = -0.5


@dataclass(frozen=True, slots=True)
class LanguageModelSpec:
    """A built biased LM: what a speech worker needs to switch a decoder to it."""

    name: str  # search name; unique per glossary set and parameters
    path: str  # pocketsphinx binary LM
    # Words missing from the decoder's dictionary, with pronunciations (space-separated phones).
    words: tuple[tuple[str, str], ...] = ()


def lm_key(snapshots: Sequence[GlossarySnapshot], params: BiasParams | None = None) -> str:
    """Cache key of the biased LM of a glossary set (ids, versions, bias parameters)."""
    params = params or BiasParams()
    h = hashlib.sha256(f"{_FORMAT}|{params}".encode())
    for snap in sorted(snapshots, key=lambda s: s.id):
        h.update(f"|{snap.id}@{snap.version}".encode())
    return "glossary-" + h.hexdigest()[:20]


# -- the base bigram model -----------------------------------------------------------


def default_lm_path() -> Path:
    from pocketsphinx import get_model_path  # deferred: no work at import time

    return Path(get_model_path()) / "en-us" / "en-us.lm.bin"


def ensure_base_lm(cache_dir: Path, source: Path | None = None) -> Path:
    """The clean bigram ARPA of the default LM in ``cache_dir`` (built once, ~20 s)."""
    target = cache_dir / _BASE_NAME
    if target.exists():
        try:
            check_arpa(target)
            return target
        except (RuntimeError, ValueError):
            target.unlink()  # a bad file from an older build: rebuild it
    source = source or default_lm_path()
    cache_dir.mkdir(parents=True, exist_ok=True)
    # The broken writer sometimes dumps garbage (-inf probabilities, NaN back-offs) that
    # passes the scale check; a base LM like that turns every caption into noise. Check
    # the whole result and dump again; give up (callers fall back to the default LM)
    # rather than ever install a bad base.
    failures: list[str] = []
    for _ in range(_DUMP_ATTEMPTS):
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            raw = Path(tmp) / "raw.arpa"
            code = (
                "import sys\nfrom pocketsphinx import NGramModel\n"
                "NGramModel.readfile(sys.argv[1]).write(sys.argv[2], 1)\n"
            )
            # The writer segfaults in the trigram section: isolate it in a child
            # process and keep what it wrote before crashing.
            subprocess.run(
                [sys.executable, "-c", code, str(source), str(raw)],
                check=False,
                capture_output=True,
                timeout=300,
            )
            try:
                scales = _dump_scales(raw, source)
                clean = Path(tmp) / _BASE_NAME
                _write_clean_bigrams(raw, clean, scales)
                check_arpa(clean)
            except (RuntimeError, ValueError, OSError) as exc:
                failures.append(str(exc))
                continue
            os.replace(clean, target)  # atomic: concurrent builders write equal files
            return target
    raise RuntimeError(f"could not rebuild the default LM: {'; '.join(failures)}")


_DUMP_ATTEMPTS = 3


def check_arpa(path: Path) -> None:
    """Refuse an ARPA file with impossible values: only sentence markers may be -99."""
    bad: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for order, line in _ngram_lines(f):
            parts = line.rstrip("\n").split("\t")
            values = [float(parts[0])] + (
                [float(parts[-1])] if order == 1 and len(parts) > 2 else []
            )
            word = parts[1]
            if not all(math.isfinite(v) for v in values) or (
                values[0] <= -98.0 and word not in ("<s>", "</s>")
            ):
                bad.append(word)
                if len(bad) > 10:
                    break
    if bad:
        raise RuntimeError(f"{path.name}: impossible n-gram values (e.g. {bad[:3]})")


def _dump_scales(raw: Path, source: Path) -> tuple[float, float]:
    """The factors the broken writer multiplied unigram and bigram log10 values by.

    Each section has its own constant factor; checked on 200 n-grams of each
    against the model's own probabilities.
    """
    from pocketsphinx import NGramModel

    model = NGramModel.readfile(str(source))
    scales: list[float] = []
    samples: dict[int, list[float]] = {1: [], 2: []}
    with raw.open(encoding="utf-8", errors="replace") as f:
        for order, line in _ngram_lines(f):
            if order > 2 or min(len(v) for v in samples.values()) >= 200:
                break
            ratios = samples[order]
            parts = line.split("\t")
            words = parts[1 : 1 + order]
            if len(ratios) >= 200 or len(words) < order or any(w[0] == "<" for w in words):
                continue
            # NGramModel.prob takes the predicted word first, then its history.
            true = model.prob(words[::-1]) * _LOG10_BASE
            if true < -0.5:
                ratios.append(float(parts[0]) / true)
    for order in (1, 2):
        ratios = sorted(samples[order])
        if not ratios:
            raise RuntimeError("could not read the default language model dump")
        scale = ratios[len(ratios) // 2]
        if ratios[0] < 0.99 * scale or ratios[-1] > 1.01 * scale:
            raise RuntimeError("the default LM dump is not a constant rescaling")
        scales.append(scale)
    return scales[0], scales[1]


def _ngram_lines(f: IO[str]) -> Iterator[tuple[int, str]]:
    """``(order, line)`` for every n-gram line of an ARPA file, in file order."""
    order = 0
    for line in f:
        line = line.rstrip("\n")
        if not line:
            continue
        if line.startswith("\\"):
            head = line[1:].split("-", 1)[0]
            order = int(head) if head.isdigit() else 0
            continue
        if order:
            yield order, line


def _declared_counts(path: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("ngram "):
                order, _, n = line[6:].partition("=")
                counts[int(order)] = int(n)
            elif line.startswith("\\1-grams"):
                break
    return counts


def _write_clean_bigrams(raw: Path, out: Path, scales: tuple[float, float]) -> None:
    uni_scale, bi_scale = scales
    unigrams: list[str] = []
    bigrams: list[str] = []
    with raw.open(encoding="utf-8", errors="replace") as f:
        for order, line in _ngram_lines(f):
            parts = line.split("\t")
            if order == 1:
                prob = -99.0 if parts[0] == "-inf" else float(parts[0]) / uni_scale
                bow = float(parts[2]) / uni_scale if len(parts) > 2 else 0.0
                unigrams.append(f"{prob:.4f}\t{parts[1]}\t{bow:.4f}\n")
                continue
            if order != 2:
                break
            if len(parts) < 4:  # the last line may be cut off by the crash
                continue
            try:
                prob = float(parts[0]) / bi_scale
            except ValueError:
                continue
            bigrams.append(f"{prob:.4f}\t{parts[1]} {parts[2]}\n")
    declared = _declared_counts(raw)
    # The crash loses the writer's last buffer (a few dozen bigrams): tolerate that much.
    if len(unigrams) != declared.get(1) or len(bigrams) < 0.999 * declared.get(2, 0):
        raise RuntimeError("the default LM dump stopped too early")
    with out.open("w", encoding="utf-8") as w:
        w.write(f"\\data\\\nngram 1={len(unigrams)}\nngram 2={len(bigrams)}\n\n\\1-grams:\n")
        w.writelines(unigrams)
        w.write("\n\\2-grams:\n")
        w.writelines(bigrams)
        w.write("\n\\end\\\n")


# -- biasing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GlossaryWords:
    """What a glossary set adds to the LM: words (with pronunciations) and term bigrams."""

    words: tuple[str, ...]
    pronunciations: dict[str, str]
    bigrams: tuple[tuple[str, str], ...]


def lm_tokens(term: str) -> list[str]:
    """A term's words as the decoder spells them (lower case)."""
    return [t.lower() for t in tokens(term) if not t.isdigit()]


def glossary_words(snapshots: Iterable[GlossarySnapshot]) -> GlossaryWords:
    # lower-case word -> its spelling in the glossary (case tells acronyms apart).
    words: dict[str, str] = {}
    bigrams: dict[tuple[str, str], None] = {}
    for snap in snapshots:
        for entry in snap.entries:
            toks = [t for t in tokens(entry.source) if not t.isdigit()]
            lowered = [t.lower() for t in toks]
            for low, tok in zip(lowered, toks, strict=True):
                words.setdefault(low, tok)
            bigrams.update(dict.fromkeys(zip(lowered, lowered[1:], strict=False)))
    dictionary = cmu_dictionary()
    prons: dict[str, str] = {}
    usable: list[str] = []
    for word, spelling in words.items():
        if word in dictionary:
            usable.append(word)
            continue
        variants = [v for v in word_pronunciations(spelling) if v]
        if variants:
            # The decoder's dictionary takes alternatives as "word(2)".
            for i, phones in enumerate(variants[:2]):
                prons[word if i == 0 else f"{word}({i + 1})"] = " ".join(phones)
            usable.append(word)
    known = set(usable)
    pairs = tuple(p for p in bigrams if p[0] in known and p[1] in known)
    return GlossaryWords(tuple(usable), prons, pairs)


def build_biased_lm(
    base: Path,
    snapshots: Sequence[GlossarySnapshot],
    out_dir: Path,
    params: BiasParams | None = None,
) -> LanguageModelSpec:
    """Write (or reuse) the biased binary LM of ``snapshots`` in ``out_dir``."""
    params = params or BiasParams()
    name = lm_key(snapshots, params)
    target = out_dir / f"{name}.lm.bin"
    words = glossary_words(snapshots)
    # Dictionary additions, in a stable order; the decoder skips words it knows.
    additions = tuple(sorted(words.pronunciations.items()))
    if target.exists():
        return LanguageModelSpec(name, str(target), additions)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        arpa = Path(tmp) / "lm.arpa"
        _write_biased_arpa(base, arpa, words, params)
        from pocketsphinx import NGramModel

        binary = Path(tmp) / "lm.bin"
        NGramModel.readfile(str(arpa)).write(str(binary), NGramModel.str_to_type("bin"))
        os.replace(binary, target)
    return LanguageModelSpec(name, str(target), additions)


def _write_biased_arpa(base: Path, out: Path, words: GlossaryWords, params: BiasParams) -> None:
    glossary = set(words.words)
    cap = math.log10(params.unigram_budget / max(1, len(glossary)))
    continuations: dict[str, int] = defaultdict(int)
    for w1, _ in words.bigrams:
        continuations[w1] += 1
    floors = {
        pair: params.bigram_floor - math.log10(continuations[pair[0]]) for pair in words.bigrams
    }
    body = out.with_suffix(".body")
    seen: set[str] = set()
    pending = dict(floors)
    counts = {1: 0, 2: 0}

    def end_unigrams(w: IO[str]) -> None:
        for word in sorted(glossary - seen):
            # Words the default LM lacks enter at the capped level.
            w.write(f"{cap:.4f}\t{word}\t0.0000\n")
            counts[1] += 1
        w.write("\n\\2-grams:\n")

    with base.open(encoding="utf-8") as f, body.open("w", encoding="utf-8") as w:
        w.write("\\1-grams:\n")
        section = 1
        for order, line in _ngram_lines(f):
            if order == 1:
                prob_s, word, bow = line.split("\t")
                seen.add(word)
                if word in glossary:
                    prob = float(prob_s)
                    prob = max(prob, min(prob + params.unigram_boost, cap))
                    line = f"{prob:.4f}\t{word}\t{bow}"
            else:
                if section == 1:
                    end_unigrams(w)
                    section = 2
                prob_s, pair_s = line.split("\t")
                w1, _, w2 = pair_s.partition(" ")
                floor = pending.pop((w1, w2), None)
                if floor is not None and float(prob_s) < floor:
                    line = f"{floor:.4f}\t{pair_s}"
            w.write(line + "\n")
            counts[order] += 1
        if section == 1:
            end_unigrams(w)
        for (w1, w2), floor in sorted(pending.items()):
            w.write(f"{floor:.4f}\t{w1} {w2}\n")
            counts[2] += 1
        w.write("\n\\end\\\n")
    n_uni, n_bi = counts[1], counts[2]
    with out.open("w", encoding="utf-8") as w, body.open(encoding="utf-8") as b:
        w.write(f"\\data\\\nngram 1={n_uni}\nngram 2={n_bi}\n\n")
        while chunk := b.read(1 << 20):
            w.write(chunk)
    body.unlink()
