"""``rasst eval``: synthesise, stream every talk through a gateway, score, write the report."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from evaluation import glossaries as gl
from evaluation.dataset import (
    Segment,
    Talk,
    default_words_file,
    load_talks,
    load_words,
    resolve_dataset,
    term_occurrences,
)
from evaluation.embedded import gateway_for
from evaluation.metrics.bleu import corpus_quality, is_char_level
from evaluation.metrics.cost import cost_summary
from evaluation.metrics.latency import (
    RefSegment,
    Resegmented,
    Unit,
    mweralign_command,
    resegment_mweralign,
    run_omnisteval,
    split_units,
    stream_laal,
)
from evaluation.metrics.retrieval import ChunkSpan, RetrievalScores, score_retrieval
from evaluation.metrics.termacc import TermAccItem, strip_tags, term_accuracy
from evaluation.runner import RunOptions, TalkRun, stream_talk, warm_up
from evaluation.synth import SynthesisedTalk, SynthOptions, parse_voice, synthesise_talk
from server.client import StreamOptions

REPORT_VERSION = 1


@dataclass(frozen=True)
class EvalConfig:
    dataset: Path
    lang: str
    out: Path
    glossary: Path | None = None
    lm: int = 2
    voice: str = "flite:slt"
    llm_url: str | None = None
    llm_model: str | None = None
    # The embedded gateway's translator tier (speech | text | auto); None: its default.
    llm_mode: str | None = None
    server: str | None = None  # gateway base URL; None = start an embedded one
    api_key: str | None = None
    talks: tuple[str, ...] = ()
    max_segments: int | None = None
    words: Path | None = None
    distractors: int = 0
    seed: int = 0
    k: int = 10
    slack: float = 0.3
    speed: float = 0.0
    max_ahead: float = 15.0
    cache_dir: Path = Path(".cache/synth")
    workers: int | None = None
    # Already uploaded glossaries (the sweep uploads once for many runs): skips the upload.
    glossary_ids: tuple[str, ...] = ()
    # Seconds a quiet session is held open first, so that the gateway's glossary index and
    # pronunciations are ready before the measured talks (see runner.warm_up).
    warmup_seconds: float = 30.0
    plots: bool = True


@dataclass
class _Glossaries:
    ids: list[str] = field(default_factory=list)
    terms: dict[str, list[str]] = field(default_factory=dict)  # base glossary, for the gold
    entries: int = 0
    distractor_entries: int = 0


def run_eval(config: EvalConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run one evaluation and write ``report.json``, ``summary.md`` and plots to ``config.out``."""
    from evaluation.report import write_report

    config.out.mkdir(parents=True, exist_ok=True)
    jsonl = resolve_dataset(config.dataset, config.lang)
    talks = load_talks(jsonl, talk_ids=config.talks, max_segments=config.max_segments)
    words_path = config.words or default_words_file(jsonl)
    words = load_words(words_path, [t.talk_id for t in talks]) if words_path else {}
    synthesised = synthesise(talks, config.voice, config.cache_dir, progress)

    with gateway_for(config) as base_url:
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        with httpx.Client(base_url=base_url, headers=headers, timeout=gl.TIMEOUT) as client:
            glossaries = prepare_glossaries(client, config, talks)
        runs = asyncio.run(_stream_all(base_url, config, synthesised, glossaries.ids, progress))

    for run in runs:
        run.write_jsonl(config.out / f"events.{run.talk_id}.jsonl")
    report = score(config, talks, synthesised, words, runs, glossaries)
    write_report(report, runs, config.out, plots=config.plots)
    return report


def synthesise(
    talks: Sequence[Talk], voice: str, cache_dir: Path, progress: Progress | None
) -> list[SynthesisedTalk]:
    engine = parse_voice(voice)
    total = sum(len(t.segments) for t in talks)
    task = progress.add_task(f"synth {voice}", total=total) if progress else None

    def tick() -> None:
        if progress is not None and task is not None:
            progress.advance(task)

    return [synthesise_talk(t, engine, cache_dir, SynthOptions(), on_segment=tick) for t in talks]


def prepare_glossaries(
    client: httpx.Client, config: EvalConfig, talks: Sequence[Talk]
) -> _Glossaries:
    """Upload the glossary (and distractors) unless ids were given; read back its terms."""
    result = _Glossaries(ids=list(config.glossary_ids))
    if not result.ids and config.glossary is not None:
        base = gl.upload(client, config.glossary, name=f"eval {config.glossary.name}")
        result.ids.append(base.id)
        if config.distractors:
            exclude = {t.en for talk in talks for s in talk.segments for t in s.terms}
            exclude |= set(gl.terms_for(client, base.id, config.lang))
            terms = gl.make_distractors(config.distractors, exclude, seed=config.seed)
            for path in gl.write_distractor_files(config.out / "distractors", terms, [config.lang]):
                result.ids.append(gl.upload(client, path, name=f"eval {path.stem}").id)
    if result.ids:
        result.terms = gl.terms_for(client, result.ids[0], config.lang)
        for gid in result.ids[1:]:
            result.distractor_entries += len(gl.terms_for(client, gid, config.lang))
        result.entries = len(result.terms) + result.distractor_entries
    return result


async def _stream_all(
    base_url: str,
    config: EvalConfig,
    synthesised: Sequence[SynthesisedTalk],
    glossary_ids: Sequence[str],
    progress: Progress | None,
) -> list[TalkRun]:
    url = ("ws" + base_url[4:] if base_url.startswith("http") else base_url) + "/v1/stream"
    options = StreamOptions(
        target_languages=[config.lang],
        glossary_ids=list(glossary_ids),
        lm=config.lm,
        api_key=config.api_key,
        client="rasst-eval",
    )
    run_options = RunOptions(speed=config.speed, max_ahead=config.max_ahead)
    if glossary_ids and config.warmup_seconds > 0:
        if progress is not None:
            progress.console.print(f"warming up the glossaries for {config.warmup_seconds:g} s")
        await warm_up(url, options, config.warmup_seconds)
    total = sum(t.duration for t in synthesised)
    task = progress.add_task(f"stream lm={config.lm}", total=total) if progress else None
    done_before = 0.0
    runs = []
    for talk in synthesised:

        def tick(seconds: float, base: float = done_before) -> None:
            if progress is not None and task is not None:
                progress.update(task, completed=base + seconds)

        runs.append(
            await stream_talk(url, talk.talk_id, talk.wav, options, run_options, on_progress=tick)
        )
        done_before += talk.duration
        tick(0.0, done_before)
    return runs


# -- scoring ---------------------------------------------------------------------------------


def _chunks(run: TalkRun) -> list[ChunkSpan]:
    return [ChunkSpan(e["chunk"], e["start"], e["end"]) for e in run.of_type("chunk.done")]


def _predictions(run: TalkRun) -> dict[int, list[str]]:
    return {e["chunk"]: [t["source"] for t in e["terms"]] for e in run.of_type("terms")}


def hypothesis_units(run: TalkRun, lang: str) -> list[Unit]:
    """Committed text of one language as latency units with their emission times (ms)."""
    processing = {e["chunk"]: float(e["processing_ms"]) for e in run.of_type("chunk.done")}
    commits = sorted(
        (e for e in run.of_type("translation.commit") if e["lang"] == lang),
        key=lambda e: e["chunk"],
    )
    char_level = is_char_level(lang)
    units: list[Unit] = []
    for commit in commits:
        delay = float(commit["end"]) * 1000
        elapsed = delay + processing.get(commit["chunk"], 0.0)
        for text in split_units(strip_tags(commit["text"]), char_level):
            units.append(Unit(text, delay, elapsed))
    return units


def score(
    config: EvalConfig,
    talks: Sequence[Talk],
    synthesised: Sequence[SynthesisedTalk],
    words: dict[str, Any],
    runs: Sequence[TalkRun],
    glossaries: _Glossaries,
) -> dict[str, Any]:
    per_talk: list[dict[str, Any]] = []
    retrieval: RetrievalScores | None = None
    retrieval_ms: list[float] = []
    processing_ms: list[float] = []
    latency_ms: list[float] = []
    lag: list[float] = []
    for talk, synth, run in zip(talks, synthesised, runs, strict=True):
        occurrences = term_occurrences(talk, synth.timing(), words.get(talk.talk_id))
        scores = score_retrieval(
            _chunks(run),
            _predictions(run),
            occurrences,
            glossaries.terms,
            k=config.k,
            slack=config.slack,
        )
        retrieval = scores if retrieval is None else retrieval + scores
        retrieval_ms += [float(e["retrieval_ms"]) for e in run.of_type("terms")]
        done = run.of_type("chunk.done")
        processing_ms += [float(e["processing_ms"]) for e in done]
        latency_ms += [float(e["latency_ms"]) for e in done]
        lag += [float(e["lag_seconds"]) for e in done]
        per_talk.append(
            {
                "talk_id": talk.talk_id,
                "segments": len(talk.segments),
                "audio_seconds": round(run.audio_seconds, 3),
                "wall_seconds": round(run.wall_seconds, 3),
                "chunks": len(done),
                "captions": sum(1 for e in run.of_type("caption") if e.get("final")),
                "terms_events": len(run.of_type("terms")),
                "commits": len(run.of_type("translation.commit")),
                "warnings": sorted({e["code"] for e in run.of_type("warning")}),
                "recall_at_k": scores.recall_at_k,
                "precision": scores.precision,
            }
        )
    started = runs[0].started if runs else {}
    chunk_seconds = float(started.get("chunk_seconds", 0.96 * config.lm))
    cost = cost_summary(
        retrieval_ms,
        processing_ms,
        latency_ms,
        lag,
        chunk_seconds,
        sum(r.audio_seconds for r in runs),
        sum(r.wall_seconds for r in runs),
    )
    retrieval_summary: dict[str, Any] = retrieval.summary() if retrieval else {}
    retrieval_summary["overhead_ratio"] = cost["overhead_ratio"]
    retrieval_summary["retrieval_ms"] = cost["retrieval_ms"]
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": _config_json(config),
        "tools": _tool_versions(),
        "mode": started.get("mode"),
        "data": {
            "dataset": str(resolve_dataset(config.dataset, config.lang)),
            "talks": [t.talk_id for t in talks],
            "segments": sum(len(t.segments) for t in talks),
            "voice": config.voice,
            "audio_seconds": round(sum(s.duration for s in synthesised), 3),
            "overrun_segments": sum(1 for s in synthesised for p in s.segments if p.overrun > 0),
        },
        "glossary": {
            "ids": glossaries.ids,
            "entries": glossaries.entries,
            "base_entries": len(glossaries.terms),
            "distractor_entries": glossaries.distractor_entries,
        },
        "retrieval": retrieval_summary,
        "cost": cost,
        "per_talk": per_talk,
    }
    if started.get("mode") == "translation" or any(r.of_type("translation.commit") for r in runs):
        translation = score_translation(config, talks, synthesised, runs, glossaries)
        report["translation"] = translation
        for key in (
            "bleu",
            "chrf",
            "term_acc",
            "term_acc_form_aware",
            "stream_laal",
            "stream_laal_ca",
        ):
            report[key] = translation.get(key)
    return report


def score_translation(
    config: EvalConfig,
    talks: Sequence[Talk],
    synthesised: Sequence[SynthesisedTalk],
    runs: Sequence[TalkRun],
    glossaries: _Glossaries,
) -> dict[str, Any]:
    lang = config.lang
    refs: list[RefSegment] = []
    sources: list[Segment] = []
    for talk, synth in zip(talks, synthesised, strict=True):
        placed = {p.seg_id: p for p in synth.segments}
        for segment in talk.segments:
            where = placed[segment.seg_id]
            refs.append(RefSegment(talk.talk_id, segment.ref, where.start, where.end - where.start))
            sources.append(segment)
    hypotheses: dict[str, Sequence[Unit]] = {r.talk_id: hypothesis_units(r, lang) for r in runs}
    omni = run_omnisteval(hypotheses, refs, lang, config.out / "scoring")
    segments: list[Resegmented] = omni.segments
    method = "omnisteval"
    note = None
    command = mweralign_command()
    if command is not None:
        try:
            segments = resegment_mweralign(hypotheses, refs, lang, command)
            method = "mweralign"
        except (RuntimeError, OSError) as exc:  # fall back, and say so in the report
            note = f"mweralign failed ({exc}); used omnisteval's re-segmentation"
    quality = corpus_quality([s.prediction for s in segments], [r.reference for r in refs], lang)
    latency = stream_laal(segments)
    terms = term_accuracy(
        [
            TermAccItem(src.en, src.ref, seg.prediction, src.terms)
            for src, seg in zip(sources, segments, strict=True)
        ],
        glossary_terms=glossaries.terms or None,
    )
    with (config.out / "resegmented.jsonl").open("w", encoding="utf-8") as handle:
        for src, seg in zip(sources, segments, strict=True):
            row = {
                "talk_id": src.talk_id,
                "seg_id": src.seg_id,
                "reference": seg.reference,
                "prediction": seg.prediction,
                "delays": [round(u.delay, 1) for u in seg.units],
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {
        "lang": lang,
        "resegmentation": method,
        "resegmentation_note": note,
        "bleu": round(quality.bleu, 3),
        "chrf": round(quality.chrf, 3),
        "bleu_signature": quality.signature,
        "term_acc": terms.term_acc,
        "term_acc_form_aware": terms.term_acc_form_aware if lang.startswith("de") else None,
        "term_acc_checks": terms.total,
        "stream_laal": latency.stream_laal,
        "stream_laal_ca": latency.stream_laal_ca,
        "latency_unit": "ms",
        "latency_accounting": "audio time (chunk end) + gateway processing_ms for CA",
        # The text tier's own terminology check (always 0 for the speech tier).
        "terms_missed": sum(
            len(e.get("terms_missed") or ())
            for r in runs
            for e in r.of_type("translation.commit")
            if e["lang"] == lang
        ),
        "scored_segments": latency.scored_segments,
        "empty_segments": latency.empty_segments,
        "omnisteval": omni.scores,
    }


def _config_json(config: EvalConfig) -> dict[str, Any]:
    data = asdict(config)
    data.pop("api_key", None)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}


def _tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for package in ("rasst", "sacrebleu", "omnisteval", "mweralign", "faster-whisper"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    versions["mweralign_command"] = " ".join(mweralign_command() or []) or None
    return versions
