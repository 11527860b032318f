"""The embedded retriever's scoring: recognised words → glossary terms, per chunk.

The evidence is the speech front end's word timeline (Whisper words with
times): final words of closed utterances and the open utterance's current
revisable words. Per chunk:

* **windows** (W = 1.92 s, stride 0.48 s, :mod:`retriever.windows`) over the
  word timeline; a window's query is the phone sequence of the words whose
  midpoint falls inside it (dictionary pronunciations: cleaner than allphone
  decoding). FAISS (phone n-gram vectors, :mod:`retriever.phonetic`) proposes
  candidates, re-scored by phone alignment, so near misses still count
  ("annotated purpose" → "annotated corpus");
* **exact matches**: a term whose words were recognised as written (spacing,
  hyphens and a plural ``s`` aside) scores 1.0, over the chunk's whole look-back
  span, so multi-word terms split across windows still match;
* :func:`retriever.aggregate.aggregate_chunk` turns both into the chunk's terms
  (K1 per window, max per term, τ, K2, target-language filter);
* **once per occurrence**: the look-back sees the end of the previous chunk
  again, so a term already reported for an overlapping stretch of audio is not
  reported again (a term said twice, seconds apart, is reported twice).

Synchronous and CPU-bound (a few ms per chunk): call it off the event loop.
One :class:`WordEvidenceRetriever` per session, used one chunk at a time.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from glossary.model import GlossarySnapshot
from kernel.frames import RecognizedWord, TermHit, TermHits
from retriever.aggregate import AggregationParams, WindowCandidates, aggregate_chunk
from retriever.index import IndexManager, TermIndex
from retriever.phonetic import PhoneticTermEncoder, phone_ids, rescore_terms, term_phone_ids
from retriever.pronounce import cmu_dictionary, number_words, tokens, word_pronunciations
from retriever.session import ChunkQuery
from retriever.windows import Window, WindowSchedule

EXACT_SCORE = 1.0
_MAX_TERM_WORDS = 8


@dataclass(frozen=True, slots=True)
class WordRetrievalParams:
    aggregation: AggregationParams = field(default_factory=AggregationParams)
    # FAISS candidates per window and glossary, re-scored by phone alignment.
    candidates: int = 100
    # Hits at or above this score count as reported (once per occurrence); None: the
    # aggregation's tau. Offline negative mining retrieves below the serving tau but
    # must see what serving would report.
    report_tau: float | None = None
    # Final words kept for look-back (seconds of audio): at least the longest
    # utterance, whose final words may arrive all at once when it ends.
    keep_seconds: float = 20.0


def _key(text: str) -> str:
    """Match key: letters and digits only, digits read out, a plural ``s`` dropped."""
    return _strip_plural(_spoken(text))


def _spoken(text: str) -> str:
    parts: list[str] = []
    for tok in tokens(text):
        if tok.isdigit() and len(tok) <= 4:
            parts.extend(number_words(int(tok)))
        else:
            parts.append(tok.lower())
    return "".join(parts)


def _strip_plural(key: str) -> str:
    # Singular and plural are the same term (a third of the prototype's misses).
    if len(key) > 3 and key.endswith("s") and not key.endswith("ss"):
        return key[:-1]
    return key


class TextMatcher:
    """Exact (normalised) term lookup for one glossary snapshot. Immutable."""

    def __init__(self, snapshot: GlossarySnapshot) -> None:
        self.snapshot = snapshot
        self._terms: dict[str, list[int]] = {}
        # The spoken form before the plural is dropped: "model" and "models" share a
        # key, and the words heard decide which of the two was said.
        self._spoken: list[str] = []
        for i, entry in enumerate(snapshot.entries):
            spoken = _spoken(entry.source)
            self._spoken.append(spoken)
            key = _strip_plural(spoken)
            if key:
                self._terms.setdefault(key, []).append(i)

    def find(self, words: Sequence[str]) -> list[tuple[int, int, int]]:
        """``(term id, first word, last word + 1)`` for every term spelled out in ``words``."""
        raw = [_spoken(w) for w in words]
        found: list[tuple[int, int, int]] = []
        for i in range(len(raw)):
            joined = ""
            for j in range(i, min(len(raw), i + _MAX_TERM_WORDS)):
                joined += raw[j]
                ids = self._terms.get(_strip_plural(joined), ())
                if len(ids) > 1:  # singular and plural entries: the one said, if present
                    ids = [t for t in ids if self._spoken[t] == joined] or ids
                for term_id in ids:
                    found.append((term_id, i, j + 1))
        return found


class TextMatchers:
    """Per-snapshot :class:`TextMatcher`, built on first use and kept for a few versions."""

    def __init__(self, max_entries: int = 64) -> None:
        self._items: OrderedDict[tuple[str, int], TextMatcher] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, snapshot: GlossarySnapshot) -> TextMatcher:
        with self._lock:
            matcher = self._items.get(snapshot.key)
            if matcher is not None and matcher.snapshot is snapshot:
                self._items.move_to_end(snapshot.key)
                return matcher
        matcher = TextMatcher(snapshot)  # outside the lock: 100k terms take ~0.5 s
        with self._lock:
            self._items[snapshot.key] = matcher
            while len(self._items) > self._max:
                self._items.popitem(last=False)
        return matcher


def warm_up(letter_to_sound: bool = True) -> None:
    """Load the pronunciation models now, not inside the first chunk's retrieval.

    The CMU dictionary takes ~2 s; training letter-to-sound (for out-of-vocabulary
    glossary words) ~15 s on the 2-core machines, so callers run this in the
    background.
    """
    from retriever import pronounce

    cmu_dictionary()
    if letter_to_sound:
        pronounce.letter_to_sound()


@functools.lru_cache(maxsize=65_536)
def word_phones(word: str) -> tuple[str, ...]:
    """The pronunciation of a recognised word as captions write it.

    Punctuation goes ("times," → times), hyphenated and slashed words are said
    piece by piece ("data-set" → data set), numbers are read out ("2022").
    """
    phones: list[str] = []
    for token in tokens(word):
        if token.isdigit() and len(token) <= 4:
            for spoken in number_words(int(token)):
                phones.extend(_token_phones(spoken))
        else:
            phones.extend(_token_phones(token))
    return tuple(phones)


def _token_phones(token: str) -> tuple[str, ...]:
    entry = cmu_dictionary().get(token.lower())
    if entry:
        return entry[0]
    variants = word_pronunciations(token)
    return variants[0] if variants else ()


class ReportedOccurrences:
    """Spans at which each term was already reported, so the look-back never repeats one.

    Two reports of a term are one occurrence when their spans overlap or lie less than
    ``margin`` samples apart: a revisable hypothesis may time a word a little off, and a
    window hit spans more than the word (a term said twice within a second is not a
    thing speakers do).
    """

    def __init__(self, margin: int = 16_000) -> None:
        self._margin = margin
        self._spans: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def fresh(self, hits: Sequence[TermHit], limit: int, record_from: float = 0.0) -> list[TermHit]:
        """The first ``limit`` hits not overlapping an earlier report of the same term.

        Records the spans of the hits it returns that score at least ``record_from``
        (only those: a hit cut by the limit may still be reported with the next chunk).
        """
        out: list[TermHit] = []
        for hit in hits:
            if len(out) >= limit:
                break
            spans = self._spans.setdefault((hit.glossary_id, hit.source), [])
            margin = self._margin
            if any(s - margin < hit.end_sample and hit.start_sample < e + margin for s, e in spans):
                continue
            if hit.score >= record_from:
                spans.append((hit.start_sample, hit.end_sample))
            out.append(hit)
        return out

    def prune(self, before: int) -> None:
        for key in list(self._spans):
            spans = [(s, e) for s, e in self._spans[key] if e >= before]
            if spans:
                self._spans[key] = spans
            else:
                del self._spans[key]


class WordTimeline:
    """A session's recognised words: final ones (pruned) plus the open utterance's."""

    def __init__(self) -> None:
        self._final: list[RecognizedWord] = []
        self._partial: tuple[RecognizedWord, ...] = ()

    def update(
        self, final: Sequence[RecognizedWord], partial: Sequence[RecognizedWord], prune_before: int
    ) -> None:
        self._final.extend(final)
        self._partial = tuple(partial)
        mids = [(w.start_sample + w.end_sample) // 2 for w in self._final]
        keep = bisect_left(mids, prune_before)
        if keep:
            del self._final[:keep]

    def words(self, start: int, end: int) -> list[RecognizedWord]:
        """Words whose midpoint lies in ``[start, end)``, in time order."""
        out = [
            w
            for w in (*self._final, *self._partial)
            if start <= (w.start_sample + w.end_sample) // 2 < end
        ]
        out.sort(key=lambda w: w.start_sample)
        return out


class WordEvidenceRetriever:
    """One session's term retrieval from recognised words. Not thread-safe."""

    def __init__(
        self,
        indexes: IndexManager,
        matchers: TextMatchers,
        glossary_ids: Sequence[str],
        target_languages: Sequence[str],
        params: WordRetrievalParams | None = None,
        schedule: WindowSchedule | None = None,
    ) -> None:
        self._indexes = indexes
        self._matchers = matchers
        self._glossary_ids = tuple(glossary_ids)
        self._targets = tuple(target_languages)
        self._params = params or WordRetrievalParams()
        self._schedule = schedule or WindowSchedule()
        self._terms = PhoneticTermEncoder()
        self._timeline = WordTimeline()
        self._reported = ReportedOccurrences()

    def set_glossaries(self, glossary_ids: Sequence[str]) -> None:
        """Takes effect from the next chunk (a tuple swap)."""
        self._glossary_ids = tuple(glossary_ids)

    def retrieve(self, query: ChunkQuery) -> TermHits:
        """:class:`~retriever.session.SessionTermRetriever`: the chunk's words (not its audio)."""
        return self.process(
            query.chunk_index,
            query.start_sample,
            query.end_sample,
            query.words,
            query.partial_words,
            final=query.final,
            aggregation=query.aggregation,
        )

    def close(self) -> None:
        return None

    def process(
        self,
        chunk_index: int,
        start_sample: int,
        end_sample: int,
        final_words: Sequence[RecognizedWord],
        partial_words: Sequence[RecognizedWord],
        *,
        final: bool = False,
        aggregation: AggregationParams | None = None,
    ) -> TermHits:
        started = time.perf_counter()
        keep = round(self._params.keep_seconds * 16_000)
        self._timeline.update(final_words, partial_words, end_sample - keep)
        # Final words of an utterance arrive when it ends, possibly after the chunks
        # that held its audio (a session behind the speaker skips revisable decodes):
        # their stretch is searched now, as part of this chunk.
        first_new = min((w.start_sample for w in final_words), default=start_sample)
        windows = self._schedule.windows_for_chunk(
            max(min(start_sample, first_new), end_sample - keep), end_sample, final=final
        )
        aggregation = aggregation or self._params.aggregation
        candidates: list[WindowCandidates] = []
        indexes = self._indexes.indexes(self._glossary_ids)
        if windows and indexes:
            span = self._timeline.words(windows[0].start, end_sample)
            candidates.extend(self._exact(span, indexes))
            candidates.extend(self._phonetic(windows, indexes, aggregation.k1))
        # Rank everything, drop what was reported already, then keep the top K2.
        ranked = aggregate_chunk(
            chunk_index, candidates, self._targets, dataclasses.replace(aggregation, k2=1 << 30)
        )
        self._reported.prune(end_sample - keep)
        report_tau = self._params.report_tau
        hits = self._reported.fresh(
            ranked.hits, aggregation.k2, aggregation.tau if report_tau is None else report_tau
        )
        return TermHits(chunk_index, tuple(hits), elapsed=time.perf_counter() - started)

    def _exact(
        self, span: list[RecognizedWord], indexes: list[TermIndex]
    ) -> list[WindowCandidates]:
        out: list[WindowCandidates] = []
        texts = [w.word for w in span]
        for index in indexes:
            matcher = self._matchers.get(index.snapshot)
            for term_id, first, last in matcher.find(texts):
                window = Window(span[first].start_sample, span[last - 1].end_sample)
                out.append(
                    WindowCandidates(
                        window,
                        index.snapshot,
                        np.asarray([term_id], dtype=np.int64),
                        np.asarray([EXACT_SCORE], dtype=np.float32),
                    )
                )
        return out

    def _phonetic(
        self, windows: list[Window], indexes: list[TermIndex], k1: int
    ) -> list[WindowCandidates]:
        sequences: list[list[str]] = []
        for window in windows:
            phones: list[str] = []
            for word in self._timeline.words(window.start, window.end):
                phones.extend(word_phones(word.word))
            sequences.append(phones)
        live = [i for i, seq in enumerate(sequences) if seq]
        if not live:
            return []
        queries = self._terms.encode_phone_sequences([sequences[i] for i in live])
        k = max(k1, self._params.candidates)
        out: list[WindowCandidates] = []
        for index in indexes:  # each a stable reference for the whole call
            found = index.search(queries, k)
            for row, pos in enumerate(live):
                ids = found.term_ids[row]
                ids = ids[ids >= 0]
                if not len(ids):
                    continue
                query = phone_ids(sequences[pos])
                variants = [_variants(index.snapshot.entries[int(t)].source) for t in ids]
                scores = rescore_terms(query, variants)
                order = np.argsort(-scores, kind="stable")[:k1]
                out.append(
                    WindowCandidates(windows[pos], index.snapshot, ids[order], scores[order])
                )
        return out


_variant_cache: dict[str, tuple[np.ndarray, ...]] = {}


def _variants(source: str) -> tuple[np.ndarray, ...]:
    cached = _variant_cache.get(source)
    if cached is None:
        if len(_variant_cache) > 300_000:
            _variant_cache.clear()
        cached = _variant_cache[source] = tuple(term_phone_ids(source))
    return cached
