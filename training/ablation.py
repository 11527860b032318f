"""``rasst train ablation``: does a served model follow a term_map, and resist a wrong one?

Three runs of the evaluation harness (:mod:`evaluation.harness`) through one
gateway, differing only in the glossary (the conditions of the WMT 2023 terminology task):

* ``no_terms``: no glossary, so every term_map is empty — the model's own terminology;
* ``correct``: the gold glossary — TERM_ACC should rise well above ``no_terms``;
* ``random``: the same source terms with their translations shuffled among entries
  (no entry keeps its own translation) — a model that copies blindly loses BLEU and
  writes the wrong translations; one that learnt the all-wrong pattern does not.

Every metric comes from the harness's report, except that TERM_ACC is recomputed for all
three runs over the same gold terms (those in the gold glossary) with the harness's
:func:`~evaluation.metrics.termacc.term_accuracy` — the harness scores a run
without a glossary over every gold term, which would not compare. ``WRONG_COPY`` is the
share of checks (a gold-glossary term spoken in a sentence) where the hypothesis contains
the shuffled translation the random glossary offered for it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from evaluation import glossaries as gl
from evaluation.dataset import GoldTerm, load_talks, resolve_dataset
from evaluation.embedded import gateway_for
from evaluation.harness import EvalConfig, run_eval
from evaluation.metrics.termacc import TermAccItem, english_occurs, strip_tags, term_accuracy
from training.glossary_file import (
    glossary_pairs,
    load_glossary,
    unique_pairs,
    write_pairs_tsv,
)


class Condition(StrEnum):
    NO_TERMS = "no_terms"
    CORRECT = "correct"
    RANDOM = "random"


def shuffled_targets(pairs: Sequence[tuple[str, str]], seed: int) -> list[tuple[str, str]]:
    """The same sources, each with another entry's translation (never its own string).

    A random cyclic permutation (Sattolo) moves every translation; entries that still
    received their own string (duplicate translations) swap with another entry. With
    fewer than two distinct translations no such glossary exists: ValueError.
    """
    if len({t for _, t in pairs}) < 2:
        raise ValueError("a random glossary needs at least two distinct translations")
    rng = random.Random(seed)
    targets = [t for _, t in pairs]
    n = len(targets)
    for i in range(n - 1, 0, -1):  # Sattolo: one cycle through every entry
        j = rng.randrange(i)
        targets[i], targets[j] = targets[j], targets[i]
    for i in range(n):
        tries = 0
        while targets[i] == pairs[i][1] and tries < 10 * n:
            j = rng.randrange(n)
            if targets[j] != pairs[i][1] and targets[i] != pairs[j][1]:
                targets[i], targets[j] = targets[j], targets[i]
            tries += 1
        if targets[i] == pairs[i][1]:
            raise ValueError(f"could not give {pairs[i][0]!r} a translation other than its own")
    return [(source, target) for (source, _), target in zip(pairs, targets, strict=True)]


def condition_glossaries(
    gold: Sequence[tuple[str, str]], seed: int
) -> dict[Condition, list[tuple[str, str]] | None]:
    """Each condition's glossary (None: no glossary at all)."""
    return {
        Condition.NO_TERMS: None,
        Condition.CORRECT: list(gold),
        Condition.RANDOM: shuffled_targets(gold, seed),
    }


@dataclass(frozen=True)
class AblationConfig:
    base: EvalConfig  # dataset, lang, lm, talks, LLM or gateway; glossary = the gold one
    seed: int = 0


def wrong_copy_rate(
    rows: Sequence[dict[str, Any]],
    sources: dict[tuple[str, int], str],
    offered: Sequence[tuple[str, str]],
    gold: Sequence[tuple[str, str]],
) -> float | None:
    """Share of (sentence, spoken glossary term) checks whose hypothesis has the offered
    translation although it is not the gold one (and not in the gold translation)."""
    wrong = {s.casefold(): t for (s, t), (_, g) in zip(offered, gold, strict=True) if t != g}
    gold_of = {s.casefold(): g for s, g in gold}
    checks = hits = 0
    for row in rows:
        source = sources.get((row["talk_id"], int(row["seg_id"])), "")
        hypothesis = strip_tags(row["prediction"])
        for term, target in wrong.items():
            if not english_occurs(term, source) or target in gold_of[term]:
                continue
            checks += 1
            hits += target in hypothesis
    return round(hits / checks, 4) if checks else None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def run_ablation(config: AblationConfig, progress: Progress | None = None) -> dict[str, Any]:
    base = config.base
    if base.glossary is None:
        raise ValueError("the ablation needs the gold glossary (--glossary)")
    gold = unique_pairs(glossary_pairs(load_glossary(base.glossary), base.lang))
    if not gold:
        raise ValueError(f"{base.glossary} has no translations into {base.lang}")
    glossaries = condition_glossaries(gold, config.seed)
    base.out.mkdir(parents=True, exist_ok=True)
    talks = load_talks(
        resolve_dataset(base.dataset, base.lang),
        talk_ids=base.talks,
        max_segments=base.max_segments,
    )
    sources = {(t.talk_id, s.seg_id): s.en for t in talks for s in t.segments}
    segment_terms: dict[tuple[str, int], tuple[GoldTerm, ...]] = {
        (t.talk_id, s.seg_id): s.terms for t in talks for s in t.segments
    }
    results: dict[str, dict[str, Any]] = {}
    with gateway_for(base) as server:
        headers = {"Authorization": f"Bearer {base.api_key}"} if base.api_key else {}
        for condition, pairs in glossaries.items():
            ids: tuple[str, ...] = ()
            if pairs is not None:
                path = write_pairs_tsv(
                    base.out / "glossaries" / f"{condition.value}.tsv", pairs, base.lang
                )
                with httpx.Client(base_url=server, headers=headers, timeout=gl.TIMEOUT) as client:
                    ids = (gl.upload(client, path, name=f"ablation {condition.value}").id,)
            run = replace(
                base,
                glossary=None,
                glossary_ids=ids,
                server=server,
                llm_url=None,
                llm_model=None,
                out=base.out / condition.value,
                warmup_seconds=base.warmup_seconds if ids else 0.0,
            )
            report = run_eval(run, progress)
            rows = (
                _read_jsonl(run.out / "resegmented.jsonl")
                if (run.out / "resegmented.jsonl").is_file()
                else []
            )
            results[condition.value] = _summarise(report, rows, sources, segment_terms, gold, pairs)
            _write(base.out, results, config)
    return results


def _summarise(
    report: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    sources: dict[tuple[str, int], str],
    segment_terms: dict[tuple[str, int], tuple[GoldTerm, ...]],
    gold: Sequence[tuple[str, str]],
    offered: Sequence[tuple[str, str]] | None,
) -> dict[str, Any]:
    terms = term_accuracy(
        [
            TermAccItem(
                sources.get((r["talk_id"], int(r["seg_id"])), ""),
                r["reference"],
                r["prediction"],
                segment_terms.get((r["talk_id"], int(r["seg_id"])), ()),
            )
            for r in rows
        ],
        glossary_terms=[s for s, _ in gold],
    )
    retrieval = report.get("retrieval", {})
    return {
        "bleu": report.get("bleu"),
        "chrf": report.get("chrf"),
        "term_acc": terms.term_acc,
        "term_acc_checks": terms.total,
        "harness_term_acc": report.get("term_acc"),
        "wrong_copy": wrong_copy_rate(rows, sources, offered, gold)
        if offered and offered != list(gold)
        else None,
        "stream_laal": report.get("stream_laal"),
        "recall_at_k": retrieval.get("recall_at_k"),
        "terms_per_chunk": _per_chunk(retrieval.get("predicted"), retrieval.get("chunks")),
        "report": str(report.get("config", {}).get("out", "")),
    }


def _per_chunk(predicted: Any, chunks: Any) -> float | None:
    if not isinstance(predicted, int) or not isinstance(chunks, int) or not chunks:
        return None
    return round(predicted / chunks, 3)


def ablation_table(results: dict[str, dict[str, Any]]) -> str:
    def fmt(value: Any, digits: int = 2) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    lines = [
        "| condition | terms/chunk | BLEU | chrF | TERM_ACC | WRONG_COPY | StreamLAAL (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {fmt(r['terms_per_chunk'])} | {fmt(r['bleu'])} | {fmt(r['chrf'])} | "
            f"{fmt(r['term_acc'], 3)} ({r['term_acc_checks']}) | {fmt(r['wrong_copy'], 3)} | "
            f"{fmt(r['stream_laal'], 0)} |"
        )
    return "\n".join(lines)


def _write(out: Path, results: dict[str, dict[str, Any]], config: AblationConfig) -> None:
    (out / "ablation.json").write_text(
        json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    base = config.base
    text = [
        "# term_map ablation",
        "",
        f"Data: {base.dataset} en→{base.lang}, lm {base.lm}, talks {', '.join(base.talks) or 'all'}"
        + (f", first {base.max_segments} segments each" if base.max_segments else ""),
        f"Gold glossary: {base.glossary}; random glossary seed {config.seed}.",
        "",
        ablation_table(results),
        "",
        "TERM_ACC: over the gold terms that are in the gold glossary (checks in brackets), "
        "the same set for every condition. WRONG_COPY: share of spoken glossary terms whose "
        "shuffled (wrong) translation from the random glossary appears in the hypothesis.",
    ]
    (out / "ablation.md").write_text("\n".join(text) + "\n", encoding="utf-8")
