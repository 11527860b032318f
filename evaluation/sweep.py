"""A sweep of ``rasst eval`` over lm and glossary sizes against one gateway.

One gateway, one upload of each glossary (the base glossary and the distractor glossaries
are uploaded once and reused by every run), one synthesis of the audio; then one
evaluation per (glossary size, lm), each with its own folder and report. Writes
``sweep.json``, ``sweep.md`` (table and the command that made it) and the two plots.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from evaluation import glossaries as gl
from evaluation.dataset import load_talks, resolve_dataset
from evaluation.embedded import gateway_for
from evaluation.harness import EvalConfig, run_eval
from evaluation.report import plot_sweep, sweep_table


@dataclass(frozen=True)
class SweepConfig:
    base: EvalConfig  # glossary, dataset, lang, talks, voice, ...; lm and out are per run
    lms: tuple[int, ...] = (1, 2, 3, 4)
    distractor_counts: tuple[int, ...] = (0, 10_000, 100_000)


def upload_sizes(client: httpx.Client, config: SweepConfig) -> dict[int, list[str]]:
    """Distractor count → glossary ids (base first). Larger sets contain the smaller ones."""
    base = config.base
    if base.glossary is None:
        raise ValueError("a sweep needs --glossary")
    talks = load_talks(resolve_dataset(base.dataset, base.lang), talk_ids=base.talks)
    base_id = gl.upload(client, base.glossary, name=f"sweep {base.glossary.name}").id
    exclude = {t.en for talk in talks for s in talk.segments for t in s.terms}
    exclude |= set(gl.terms_for(client, base_id, base.lang))
    result: dict[int, list[str]] = {}
    for count in sorted(config.distractor_counts):
        ids = [base_id]
        if count:
            terms = gl.make_distractors(count, exclude, seed=base.seed)
            for path in gl.write_distractor_files(base.out / "distractors", terms, [base.lang]):
                ids.append(gl.upload(client, path, name=f"sweep {path.stem}").id)
        result[count] = ids
    return result


def run_sweep(
    config: SweepConfig, progress: Progress | None = None, argv: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    base = config.base
    base.out.mkdir(parents=True, exist_ok=True)
    reports: list[dict[str, Any]] = []
    with gateway_for(base) as server:
        headers = {"Authorization": f"Bearer {base.api_key}"} if base.api_key else {}
        with httpx.Client(base_url=server, headers=headers, timeout=gl.TIMEOUT) as client:
            sizes = upload_sizes(client, config)
        for count, ids in sizes.items():
            for position, lm in enumerate(config.lms):
                run = replace(
                    base,
                    lm=lm,
                    server=server,
                    glossary_ids=tuple(ids),
                    distractors=count,
                    out=base.out / f"d{count}-lm{lm}",
                    # The glossaries are ready after the first run of a size.
                    warmup_seconds=base.warmup_seconds if position == 0 else 0.0,
                )
                report = run_eval(run, progress)
                reports.append(report)
                # Written as it goes: a long sweep that stops half-way keeps its results.
                _write(base.out, reports, argv)
    return reports


def _write(out: Path, reports: list[dict[str, Any]], argv: Sequence[str] | None) -> None:
    (out / "sweep.json").write_text(json.dumps(reports, indent=1, ensure_ascii=False))
    command = " ".join(shlex.quote(a) for a in (argv or sys.argv))
    first = reports[0]
    text = [
        "# Evaluation sweep",
        "",
        f"Command: `{command}`",
        "",
        f"Data: {', '.join(first['data']['talks'])} ({first['data']['segments']} segments, "
        f"{first['data']['audio_seconds']:.0f} s, voice {first['data']['voice']}); "
        f"mode `{first['mode']}`; tools: "
        + ", ".join(
            f"{k} {v}" for k, v in first["tools"].items() if v and k != "mweralign_command"
        ),
        "",
        sweep_table(reports),
    ]
    (out / "sweep.md").write_text("\n".join(text), encoding="utf-8")
    plot_sweep(reports, out)
