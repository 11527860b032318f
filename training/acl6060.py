"""The ACL 60/60 dev set (and its synthesised talk audio) as a training corpus.

The evaluation harness already turns the dev set into long-form talk audio
(``rasst data synth``: each segment synthesised with a local TTS at its reference offset,
cached). This adaptor reuses that audio and its ``timing.json``: a corpus record per talk,
a segment per dev segment at its synthesised span, with its English, its reference
translation, the forced-alignment word times of the original recording mapped linearly
onto the synthesised span (as :func:`evaluation.dataset.term_occurrences` maps the
gold terms), and the gold terms where they are spoken.

The dev set is the evaluation set: data built from it is for trying the recipe and for
its statistics, never for training a model that is then scored on ACL 60/60.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from evaluation.dataset import (
    AlignedWord,
    Segment,
    SegmentTiming,
    Talk,
    default_words_file,
    load_talks,
    load_words,
    resolve_dataset,
    term_occurrences,
)
from evaluation.synth import PlacedSegment, SynthOptions, parse_voice, synthesise_talk
from training.corpus import CorpusRecord, CorpusSegment, CorpusTerm, CorpusWord

WORD_MARGIN = 0.3  # seconds: a word belongs to a segment if its midpoint is this close


def _mapped_words(
    segment: Segment, placed: PlacedSegment, words: Sequence[AlignedWord]
) -> tuple[CorpusWord, ...]:
    ref_span = max(segment.end - segment.start, 1e-6)
    scale = (placed.end - placed.start) / ref_span

    def to_synth(t: float) -> float:
        mapped = placed.start + (t - segment.start) * scale
        return round(min(max(mapped, placed.start), placed.end), 4)

    out = []
    for word in words:
        middle = (word.start + word.end) / 2
        if segment.start - WORD_MARGIN <= middle <= segment.end + WORD_MARGIN:
            out.append(
                CorpusWord(start=to_synth(word.start), end=to_synth(word.end), word=word.word)
            )
    return tuple(out)


def talk_record(
    talk: Talk,
    wav: Path,
    placed: Sequence[PlacedSegment],
    timing: Sequence[SegmentTiming],
    words: Sequence[AlignedWord],
    lang: str,
) -> CorpusRecord:
    by_seg = {p.seg_id: p for p in placed}
    occurrences = term_occurrences(talk, timing, words)
    terms: dict[int, list[CorpusTerm]] = {}
    for occ in occurrences:
        # Unaligned terms get no times: the builder then finds them among the words.
        times = {"start": round(occ.start, 4), "end": round(occ.end, 4)} if occ.aligned else {}
        terms.setdefault(occ.seg_id, []).append(CorpusTerm(source=occ.en, target=occ.tgt, **times))
    segments = []
    for segment in talk.segments:
        where = by_seg[segment.seg_id]
        segments.append(
            CorpusSegment(
                start=where.start,
                end=where.end,
                source=segment.en,
                translation=segment.ref,
                words=_mapped_words(segment, where, words),
                terms=tuple(terms.get(segment.seg_id, ())),
            )
        )
    return CorpusRecord(
        id=talk.talk_id, audio=wav.resolve(), target_lang=lang, segments=tuple(segments)
    )


def acl6060_corpus(
    dataset: Path,
    lang: str,
    *,
    voice: str = "flite:slt",
    cache_dir: Path,
    talks: Sequence[str] = (),
    max_segments: int | None = None,
    on_segment: Callable[[], None] | None = None,
) -> list[CorpusRecord]:
    """One record per talk, synthesising (or reusing the cached) talk audio."""
    jsonl = resolve_dataset(dataset, lang)
    loaded = load_talks(jsonl, talk_ids=talks, max_segments=max_segments)
    words_file = default_words_file(jsonl)
    words = load_words(words_file, [t.talk_id for t in loaded]) if words_file else {}
    engine = parse_voice(voice)
    records = []
    for talk in loaded:
        synth = synthesise_talk(talk, engine, cache_dir, SynthOptions(), on_segment=on_segment)
        records.append(
            talk_record(
                talk, synth.wav, synth.segments, synth.timing(), words.get(talk.talk_id, []), lang
            )
        )
    return records
