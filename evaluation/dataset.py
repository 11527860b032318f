"""Evaluation datasets in the ACL 60/60 JSONL layout, with gold term occurrences in time.

One JSONL line per segment: ``talk_id, seg_id, talk_seg_idx, en, ref, terms[{en, tgt}],
audio{start, end}``; times are seconds into the talk. Word timestamps (forced alignment of the
original recording) come from a TSV ``talk_id, start, end, word``. They place each gold term
inside its segment; the synthesised audio has its own timing, so term times are mapped
linearly from the reference segment span onto the synthesised one (see :func:`term_occurrences`).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GoldTerm:
    en: str
    tgt: str


@dataclass(frozen=True)
class Segment:
    talk_id: str
    seg_id: int
    index: int  # position within its talk (talk_seg_idx)
    en: str
    ref: str
    terms: tuple[GoldTerm, ...]
    start: float  # seconds into the original talk
    end: float


@dataclass(frozen=True)
class Talk:
    talk_id: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class AlignedWord:
    start: float
    end: float
    word: str


@dataclass(frozen=True)
class TermOccurrence:
    """One spoken occurrence of a gold term, in seconds of synthesised talk audio."""

    talk_id: str
    seg_id: int
    en: str
    tgt: str
    start: float
    end: float
    # False when the words were not found in the alignment and the whole segment span is used.
    aligned: bool


def resolve_dataset(dataset: Path, lang: str) -> Path:
    """A JSONL file itself, or ``DIR/dev.en-LANG.jsonl``, or ``PREFIX.en-LANG.jsonl``."""
    if dataset.is_file():
        return dataset
    candidates = [dataset.with_name(f"{dataset.name}.en-{lang}.jsonl")]
    if dataset.is_dir():
        candidates.insert(0, dataset / f"dev.en-{lang}.jsonl")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no dataset for en-{lang} at {dataset}")


def default_words_file(jsonl: Path) -> Path | None:
    """``dev.en-de.jsonl`` → ``dev.mfa_words.tsv`` beside it, when present."""
    stem = jsonl.name.split(".en-")[0]
    candidate = jsonl.with_name(f"{stem}.mfa_words.tsv")
    return candidate if candidate.is_file() else None


def load_talks(
    jsonl: Path,
    *,
    talk_ids: Sequence[str] = (),
    max_segments: int | None = None,
) -> list[Talk]:
    """Talks in file order; optionally only ``talk_ids`` and the first ``max_segments`` of each."""
    by_talk: dict[str, list[Segment]] = {}
    with jsonl.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            audio = row["audio"]
            segment = Segment(
                talk_id=row["talk_id"],
                seg_id=int(row["seg_id"]),
                index=int(row.get("talk_seg_idx", 0)),
                en=row["en"],
                ref=row["ref"],
                terms=tuple(GoldTerm(t["en"], t["tgt"]) for t in row.get("terms", [])),
                start=float(audio["start"]),
                end=float(audio["end"]),
            )
            by_talk.setdefault(segment.talk_id, []).append(segment)
    if talk_ids:
        missing = [t for t in talk_ids if t not in by_talk]
        if missing:
            raise KeyError(f"talks not in {jsonl.name}: {', '.join(missing)}")
        chosen = list(talk_ids)
    else:
        chosen = list(by_talk)
    talks = []
    for talk_id in chosen:
        segments = sorted(by_talk[talk_id], key=lambda s: s.index)
        if max_segments is not None:
            segments = segments[:max_segments]
        talks.append(Talk(talk_id, tuple(segments)))
    return talks


def load_words(path: Path, talk_ids: Iterable[str] | None = None) -> dict[str, list[AlignedWord]]:
    """Word timestamps per talk, in time order."""
    wanted = set(talk_ids) if talk_ids is not None else None
    words: dict[str, list[AlignedWord]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if wanted is not None and row["talk_id"] not in wanted:
                continue
            words.setdefault(row["talk_id"], []).append(
                AlignedWord(float(row["start"]), float(row["end"]), row["word"])
            )
    for talk_words in words.values():
        talk_words.sort(key=lambda w: w.start)
    return words


_TOKEN = re.compile(r"[\w']+", re.UNICODE)


def match_tokens(text: str) -> list[str]:
    """Lower-cased word parts, hyphens split: the unit in which terms are found in word lists."""
    return [t.strip("'") for t in _TOKEN.findall(text.casefold()) if t.strip("'")]


def _find_all(haystack: Sequence[str], needle: Sequence[str]) -> list[int]:
    n = len(needle)
    if n == 0:
        return []
    return [i for i in range(len(haystack) - n + 1) if list(haystack[i : i + n]) == list(needle)]


@dataclass(frozen=True)
class SegmentTiming:
    """Where a segment ended up in the synthesised talk (seconds)."""

    seg_id: int
    start: float
    end: float


def term_occurrences(
    talk: Talk,
    timing: Sequence[SegmentTiming],
    words: Sequence[AlignedWord] | None,
    *,
    margin: float = 0.3,
) -> list[TermOccurrence]:
    """Every occurrence of every gold term of the talk, in synthesised time.

    The reference word times of a segment (words whose midpoint falls within the segment
    span ± ``margin``) are mapped linearly from the reference span onto the synthesised
    span. A term whose words are not in the alignment gets the whole synthesised segment
    span (``aligned=False``); a term spoken twice in a segment yields two occurrences.
    """
    placed = {t.seg_id: t for t in timing}
    result: list[TermOccurrence] = []
    for segment in talk.segments:
        where = placed.get(segment.seg_id)
        if where is None or not segment.terms:
            continue
        parts: list[str] = []
        spans: list[tuple[float, float]] = []
        for word in words or ():
            middle = (word.start + word.end) / 2
            if segment.start - margin <= middle <= segment.end + margin:
                for part in match_tokens(word.word):
                    parts.append(part)
                    spans.append((word.start, word.end))
        ref_span = max(segment.end - segment.start, 1e-6)
        scale = (where.end - where.start) / ref_span

        def to_synth(
            t: float, seg: Segment = segment, at: SegmentTiming = where, k: float = scale
        ) -> float:
            mapped = at.start + (t - seg.start) * k
            return min(max(mapped, at.start), at.end)

        seen: set[tuple[str, str]] = set()
        for term in segment.terms:
            key = (term.en.casefold(), term.tgt)
            if key in seen:  # a pair listed twice is one term
                continue
            seen.add(key)
            needle = match_tokens(term.en)
            hits = _find_all(parts, needle)
            if not hits:
                result.append(
                    TermOccurrence(
                        talk.talk_id,
                        segment.seg_id,
                        term.en,
                        term.tgt,
                        where.start,
                        where.end,
                        aligned=False,
                    )
                )
                continue
            for i in hits:
                start, end = spans[i][0], spans[i + len(needle) - 1][1]
                result.append(
                    TermOccurrence(
                        talk.talk_id,
                        segment.seg_id,
                        term.en,
                        term.tgt,
                        to_synth(start),
                        to_synth(end),
                        aligned=True,
                    )
                )
    return result
