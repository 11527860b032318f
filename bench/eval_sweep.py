"""Sweep ``rasst eval`` over lm = 1..4 and glossary sizes (base, +10k, +100k distractors).

    .venv/bin/python bench/eval_sweep.py ../shared/data/acl6060 --to de \
        --glossary ../shared/data/glossaries/rasst_acl_tagged_pairs_observed.tsv \
        --talk 2022.acl-long.268 --out .cache/eval/sweep-de

Starts one embedded gateway (or uses --server), uploads each glossary once, and writes a
report per run plus ``sweep.md`` (the table for docs/benchmarks.md), ``sweep.json`` and the
plots ``quality_vs_latency.png`` and ``recall_vs_glossary_size.png``. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evaluation.harness import EvalConfig
from evaluation.sweep import SweepConfig, run_sweep
from evaluation.synth import default_cache_dir


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--to", dest="lang", required=True)
    parser.add_argument("--glossary", type=Path, required=True)
    parser.add_argument("--lm", type=_ints, default=(1, 2, 3, 4), help="e.g. 1,2,3,4")
    parser.add_argument("--distractors", type=_ints, default=(0, 10_000, 100_000))
    parser.add_argument("--talk", action="append", default=[])
    parser.add_argument("--max-segments", type=int)
    parser.add_argument("--voice", default="flite:slt")
    parser.add_argument("--server")
    parser.add_argument("--llm-url")
    parser.add_argument("--llm-model")
    parser.add_argument("--llm-mode", choices=["speech", "text", "auto"])
    parser.add_argument("--workers", type=int)
    parser.add_argument("--speed", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds, once per size")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(".cache/eval/sweep"))
    args = parser.parse_args()
    base = EvalConfig(
        dataset=args.dataset,
        lang=args.lang,
        out=args.out,
        glossary=args.glossary,
        voice=args.voice,
        server=args.server,
        llm_url=args.llm_url,
        llm_model=args.llm_model,
        llm_mode=args.llm_mode,
        talks=tuple(args.talk),
        max_segments=args.max_segments,
        seed=args.seed,
        speed=args.speed,
        cache_dir=args.cache_dir or default_cache_dir(),
        workers=args.workers,
        warmup_seconds=args.warmup,
    )
    config = SweepConfig(base=base, lms=args.lm, distractor_counts=args.distractors)
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        run_sweep(config, progress)
    print((args.out / "sweep.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
