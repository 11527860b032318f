"""``rasst train slm-data``: a speech-translation corpus → term_map SFT conversations.

Three passes:

1. **plan** every recording: cut it into serving chunks for each lm
   (:mod:`training.chunking`) and, unless ``--no-retriever``, replay the embedded
   retriever over its audio (:mod:`training.retrieval`; decoding runs in ``jobs``
   worker processes). Silent chunks are dropped, as serving never sends them to the model;
   without the retriever a chunk is silent when no source word falls in it;
2. **assign** a pattern to every remaining chunk: exact counts for the mix, seeded
   (:mod:`training.patterns`);
3. **write**: each chunk's term_map (:mod:`training.term_maps`), its answer with
   gold translations tagged, conversations of consecutive chunks shaped exactly like the
   translator's requests (:func:`server.translator.messages.build_messages` with
   :func:`~server.translator.messages.build_user_turn`), turned into SFT rows
   (:mod:`training.sft_format`) with one WAV per chunk under ``audio/``.

A conversation is what serving's history holds: up to ``HistoryParams().limit(lm)``
answered chunks plus the new one (31 chunks for lm 1–2, 21 for lm 3–4), cut from a
recording's speech chunks in order. Outputs in ``out``: ``NAME.jsonl`` (SFT rows),
``NAME.meta.jsonl`` (per row: recording, lm, each turn's chunk, pattern and term_map with
every entry's kind and origin), ``NAME.stats.json``, and ``audio/``.

Why one module past 400 lines: the builder walks a recording once, chunk by chunk, and writes
three outputs from that walk; split, the walk's state would be passed between modules.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import random
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics.bleu import is_char_level
from kernel.frames import PIPELINE_RATE, ChunkAnalysis
from server.audio import chunk_samples
from server.translator.messages import (
    Message,
    assistant_turn,
    audio_part,
    base_language,
    build_messages,
    build_user_turn,
)
from server.translator.params import AudioPartStyle, HistoryParams
from training.audio import load_pcm
from training.chunking import ChunkingParams, GoldOccurrence, PlannedChunk, plan_chunks
from training.corpus import CorpusRecord, read_corpus
from training.glossary_file import glossary_pairs, load_glossary, unique_pairs
from training.patterns import Pattern, PatternMix, assign_patterns
from training.retrieval import (
    ChunkRetrieval,
    GlossaryContext,
    OfflineRetrievalParams,
    analyse_recording,
    group_pieces,
    retrieve_chunks,
)
from training.sft_format import to_sft_row
from training.stats import BuildStats
from training.tagging import count_tags, wrap_terms
from training.term_maps import (
    EntryKind,
    ReleaseRecipe,
    TermMapEntry,
    TermMapParams,
    classify_hits,
    compose_release_term_map,
    compose_term_map,
    term_key,
)

PIECE_SAMPLES = chunk_samples(1)


@dataclass(frozen=True, slots=True)
class BuildParams:
    corpus: Path
    glossary: Path
    lang: str
    out: Path
    name: str = "train"
    lms: tuple[int, ...] = (1, 2, 3, 4)
    mix: PatternMix = field(default_factory=PatternMix)
    term_maps: TermMapParams = field(default_factory=TermMapParams)
    # The release's term_map recipe (``--preset release``) instead of the patterns.
    recipe: ReleaseRecipe | None = None
    seed: int = 0
    tags: bool = True
    # Turns after the one whose term_map offered a gold term in which its translation
    # may still be tagged (a translation can lag its source by a chunk).
    tag_window: int = 1
    # None: no retriever; negatives are sampled from the glossary.
    retriever: OfflineRetrievalParams | None = None
    # Chunks per conversation; None: serving's history limit for the lm, plus one.
    conversation_chunks: int | None = None
    # First chunks of consecutive conversations this far apart; None: no overlap.
    stride: int | None = None
    lag_words: int = 2
    jobs: int = 1
    audio_style: AudioPartStyle = AudioPartStyle.INPUT_AUDIO
    absolute_paths: bool = False

    def conversation_length(self, lm: int) -> int:
        if self.conversation_chunks is not None:
            return max(1, self.conversation_chunks)
        return HistoryParams().limit(lm) + 1


@dataclass(slots=True)
class _Turn:
    chunk: PlannedChunk
    retrieved: list[TermMapEntry] | None
    neighbours: tuple[GoldOccurrence, ...]
    pattern: Pattern = Pattern.STANDARD


@dataclass(slots=True)
class _Plan:
    """One recording at one lm: its speech chunks, in order."""

    record: CorpusRecord
    lm: int
    turns: list[_Turn]


@dataclass(frozen=True, slots=True)
class BuildResult:
    rows: Path
    meta: Path
    stats_path: Path
    stats: dict[str, Any]


# -- pass 1: plan -------------------------------------------------------------------------


def _piece_bounds(record: CorpusRecord, total: int) -> list[tuple[int, int]]:
    if record.chunks is not None:
        return [
            (c.start_sample, c.end_sample) for c in plan_chunks(record, total, ChunkingParams())
        ]
    return [(s, min(s + PIECE_SAMPLES, total)) for s in range(0, total, PIECE_SAMPLES)]


def _analyse_job(record: CorpusRecord, hotwords: str) -> tuple[int, list[ChunkAnalysis]]:
    """Runs in a worker process: the recording's length and its front-end analyses."""
    pcm = load_pcm(record.audio)
    return len(pcm), analyse_recording(pcm, _piece_bounds(record, len(pcm)), hotwords)


def _neighbour_gold(chunks: Sequence[PlannedChunk], i: int) -> tuple[GoldOccurrence, ...]:
    return tuple(g for j in (i - 1, i + 1) if 0 <= j < len(chunks) for g in chunks[j].gold)


def _plan_record(
    record: CorpusRecord,
    total: int,
    analyses: list[ChunkAnalysis] | None,
    context: GlossaryContext | None,
    params: BuildParams,
    stats: BuildStats,
) -> list[_Plan]:
    plans = []
    lms = (1,) if record.chunks is not None else params.lms
    for lm in lms:
        chunks = plan_chunks(record, total, ChunkingParams(lm=lm, lag_words=params.lag_words))
        bounds = [(c.start_sample, c.end_sample) for c in chunks]
        retrievals: list[ChunkRetrieval] | None = None
        if context is not None and analyses is not None:
            grouped = group_pieces(analyses, _piece_bounds(record, total), bounds)
            retrievals = retrieve_chunks(context, grouped, bounds, params.lang)
        turns: list[_Turn] = []
        carried = ""  # translation of dropped chunks, said with the next speech chunk
        for i, chunk in enumerate(chunks):
            if not chunk.emit:
                continue
            stats.chunks_total += 1
            speech = retrievals[i].has_speech if retrievals is not None else chunk.has_words
            if not speech:
                stats.chunks_silent += 1
                if chunk.translation:
                    # The VAD heard nothing where the words say something: serving would
                    # not ask the model here, so the text moves to the next turn.
                    stats.translations_moved += 1
                    carried = _join(carried, chunk.translation, params.lang)
                continue
            if carried:
                chunk = dataclasses.replace(
                    chunk, translation=_join(carried, chunk.translation, params.lang)
                )
                carried = ""
            neighbours = _neighbour_gold(chunks, i)
            retrieved = None
            if retrievals is not None:
                hits = retrievals[i].hits
                served = context.params.tau if context is not None else 0.0
                stats.retrieval_chunks += 1
                stats.retrieval_hits += sum(1 for h in hits.hits if h.score >= served)
                retrieved = classify_hits(hits, chunk, neighbours, params.lang, served)
            turns.append(_Turn(chunk, retrieved, neighbours))
        if carried and turns:
            last = turns[-1]
            last.chunk = dataclasses.replace(
                last.chunk, translation=_join(last.chunk.translation, carried, params.lang)
            )
        stats.per_lm_chunks[lm] += len(turns)
        plans.append(_Plan(record, lm, turns))
    return plans


def _join(first: str, second: str, lang: str) -> str:
    joiner = "" if is_char_level(lang) else " "
    return joiner.join(t for t in (first.strip(), second.strip()) if t)


# -- pass 3: write --------------------------------------------------------------------------


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "recording"


def _tag_answers(
    turns: Sequence[_Turn], maps: Sequence[list[TermMapEntry]], params: BuildParams
) -> list[tuple[str, list[str]]]:
    """Each turn's answer with the gold translations it uses tagged (see module docs)."""
    pending: dict[str, int] = {}  # target → last turn it may be tagged in
    out = []
    for t, (turn, entries) in enumerate(zip(turns, maps, strict=True)):
        text = turn.chunk.translation
        for entry in entries:
            if entry.kind is EntryKind.GOLD:
                pending[entry.target] = t + params.tag_window
        wrapped: list[str] = []
        if params.tags:
            live = [target for target, last in pending.items() if last >= t]
            text, wrapped = wrap_terms(text, live, params.lang)
        for target in wrapped:
            pending.pop(target, None)
        pending = {k: v for k, v in pending.items() if v > t}
        out.append((text, wrapped))
    return out


def _conversations(n: int, length: int, stride: int) -> list[range]:
    if n == 0:
        return []
    starts = list(range(0, max(1, n - length + stride), stride))
    return [range(s, min(s + length, n)) for s in starts if s < n]


class _Writer:
    def __init__(
        self, params: BuildParams, stats: BuildStats, glossary: Sequence[tuple[str, str]]
    ) -> None:
        self.params = params
        self.stats = stats
        self.glossary = glossary
        params.out.mkdir(parents=True, exist_ok=True)
        self._stack = ExitStack()
        self.rows_path = params.out / f"{params.name}.jsonl"
        self.meta_path = params.out / f"{params.name}.meta.jsonl"
        self._rows = self._stack.enter_context(self.rows_path.open("w", encoding="utf-8"))
        self._meta = self._stack.enter_context(self.meta_path.open("w", encoding="utf-8"))
        self._written: set[str] = set()

    def close(self) -> None:
        self._stack.close()

    def _store(self, relative: str, wav: bytes) -> None:
        if relative in self._written:
            return
        path = self.params.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav)
        self._written.add(relative)

    def write_plan(self, plan: _Plan, pcm: np.ndarray, seed: int) -> None:
        params = self.params
        glossary = self.glossary
        length = params.conversation_length(plan.lm)
        spans = _conversations(len(plan.turns), length, params.stride or length)
        # The recipe's "supported" test looks at the answers from a turn to the end
        # of its conversation (the first one holding it, when conversations overlap).
        conversation_end: dict[int, int] = {}
        for span in spans:
            for i in span:
                conversation_end.setdefault(i, span.stop)
        maps = []
        for i, turn in enumerate(plan.turns):
            rng = random.Random(f"{seed}:{plan.record.id}:{plan.lm}:{turn.chunk.index}")
            if params.recipe is not None:
                future = "\n".join(
                    t.chunk.translation for t in plan.turns[i : conversation_end.get(i, i + 1)]
                )
                entries, draw = compose_release_term_map(
                    turn.chunk, turn.retrieved, future, params.recipe, rng
                )
                self.stats.add_recipe_draw(draw)
            else:
                entries = compose_term_map(
                    turn.pattern,
                    turn.chunk,
                    turn.retrieved,
                    turn.neighbours,
                    glossary,
                    params.term_maps,
                    rng,
                )
            maps.append(entries)
            gold_terms = len({term_key(g.source) for g in turn.chunk.gold})
            self.stats.add_chunk(turn.pattern, entries, gold_terms)
        folder = f"audio/{_safe(plan.record.id)}/lm{plan.lm}"
        for span in spans:
            turns = [plan.turns[i] for i in span]
            turn_maps = [maps[i] for i in span]
            answers = _tag_answers(turns, turn_maps, params)
            pairs: list[tuple[Message, str]] = []
            for turn, entries, (answer, _) in zip(turns, turn_maps, answers, strict=True):
                chunk = turn.chunk
                audio = audio_part(pcm[chunk.start_sample : chunk.end_sample], params.audio_style)
                user = build_user_turn(audio, [(e.source, e.target) for e in entries])
                pairs.append((user, answer))
            messages = build_messages(params.lang, pairs[:-1], pairs[-1][0])
            messages.append(assistant_turn(pairs[-1][1]))
            paths = [f"{folder}/{t.chunk.index:06d}.wav" for t in turns]
            row = to_sft_row(messages, paths, self._store)
            if params.absolute_paths:
                row["audios"] = [str((params.out / p).resolve()) for p in row["audios"]]
            self._rows.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._meta.write(
                json.dumps(self._meta_row(plan, turns, turn_maps, answers), ensure_ascii=False)
                + "\n"
            )
            self.stats.conversations += 1
            self.stats.turns += len(turns)
            self.stats.turns_per_conversation[len(turns)] += 1
            texts = [a for a, _ in answers]
            self.stats.empty_answers += sum(1 for a in texts if not a)
            self.stats.tags += count_tags(texts)
            self.stats.turns_with_tags += sum(1 for _, w in answers if w)
            self.stats.gold_tagged += sum(len(w) for _, w in answers)

    @staticmethod
    def _meta_row(
        plan: _Plan,
        turns: Sequence[_Turn],
        maps: Sequence[list[TermMapEntry]],
        answers: Sequence[tuple[str, list[str]]],
    ) -> dict[str, Any]:
        return {
            "record": plan.record.id,
            "lm": plan.lm,
            "turns": [
                {
                    "chunk": t.chunk.index,
                    "start": round(t.chunk.start, 3),
                    "end": round(t.chunk.end, 3),
                    "source": t.chunk.source,
                    "pattern": t.pattern.value,
                    "gold": [{"source": g.source, "target": g.target} for g in t.chunk.gold],
                    "term_map": [
                        {
                            "source": e.source,
                            "target": e.target,
                            "kind": e.kind.value,
                            "origin": e.origin.value,
                            "score": None if e.score is None else round(e.score, 4),
                        }
                        for e in entries
                    ],
                    "tagged": wrapped,
                }
                for t, entries, (_, wrapped) in zip(turns, maps, answers, strict=True)
            ],
        }


# -- the whole build ----------------------------------------------------------------------


def build_dataset(
    params: BuildParams,
    on_record: Callable[[str], None] | None = None,
    argv: Sequence[str] | None = None,
) -> BuildResult:
    """Build the SFT data; ``on_record`` is called after each recording is planned."""
    snapshot = load_glossary(params.glossary)
    glossary = unique_pairs(glossary_pairs(snapshot, params.lang))
    if not glossary:
        raise ValueError(f"{params.glossary} has no translations into {params.lang}")
    stats = BuildStats(serving_tau=params.retriever.tau if params.retriever else None)
    records: list[CorpusRecord] = []
    ids: set[str] = set()
    for record in read_corpus(params.corpus):
        if record.id in ids:
            raise ValueError(f"{params.corpus}: recording id {record.id!r} appears twice")
        ids.add(record.id)
        if base_language(record.target_lang) != base_language(params.lang):
            stats.records_skipped += 1
            continue
        records.append(record)
    if not records:
        raise ValueError(f"{params.corpus} has no recordings translated into {params.lang}")
    stats.records = len(records)

    plans: list[_Plan] = []
    with ExitStack() as stack:
        context = None
        if params.retriever is not None:
            context = GlossaryContext(snapshot, params.retriever)
            stack.callback(context.close)
            # Spawned, not forked: this process already runs index-building threads.
            pool: Executor = stack.enter_context(
                ProcessPoolExecutor(
                    max_workers=max(1, params.jobs), mp_context=multiprocessing.get_context("spawn")
                )
            )
            futures = [pool.submit(_analyse_job, r, context.hotwords) for r in records]
            for record, future in zip(records, futures, strict=True):
                total, analyses = future.result()
                stats.audio_seconds += total / PIPELINE_RATE
                plans += _plan_record(record, total, analyses, context, params, stats)
                if on_record is not None:
                    on_record(record.id)
        else:
            for record in records:
                total = len(load_pcm(record.audio))
                stats.audio_seconds += total / PIPELINE_RATE
                plans += _plan_record(record, total, None, None, params, stats)
                if on_record is not None:
                    on_record(record.id)

    all_turns = [turn for plan in plans for turn in plan.turns]
    for turn, pattern in zip(
        all_turns, assign_patterns(len(all_turns), params.mix, params.seed), strict=True
    ):
        turn.pattern = pattern

    writer = _Writer(params, stats, glossary)
    try:
        by_record: dict[str, list[_Plan]] = {}
        for plan in plans:
            by_record.setdefault(plan.record.id, []).append(plan)
        for record_plans in by_record.values():
            pcm = load_pcm(record_plans[0].record.audio)
            for plan in record_plans:
                writer.write_plan(plan, pcm, params.seed)
    finally:
        writer.close()

    summary = stats.summary(params.mix, retriever=params.retriever is not None)
    if params.recipe is not None:
        summary["release_recipe"] = stats.recipe_summary()
    summary["params"] = _params_json(params)
    summary["glossary_entries"] = len(glossary)
    if argv is not None:
        summary["command"] = list(argv)
    stats_path = params.out / f"{params.name}.stats.json"
    stats_path.write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    return BuildResult(writer.rows_path, writer.meta_path, stats_path, summary)


def _params_json(params: BuildParams) -> dict[str, Any]:
    data = asdict(params)

    def clean(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    cleaned: dict[str, Any] = clean(data)
    return cleaned
