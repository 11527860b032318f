"""``rasst data synth`` and ``rasst eval``: typer commands, mounted by server/cli.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
data_app = typer.Typer(no_args_is_help=True, add_completion=False)

DatasetArg = Annotated[
    Path,
    typer.Argument(
        help="Dataset JSONL (ACL 60/60 layout), or its folder/prefix (dev.en-LANG.jsonl is used)."
    ),
]
TalkOpt = Annotated[
    list[str] | None, typer.Option("--talk", help="Only this talk id (repeatable).")
]
MaxSegOpt = Annotated[
    int | None, typer.Option(min=1, help="Only the first N segments of each talk.")
]
VoiceOpt = Annotated[
    str,
    typer.Option(help="TTS voice ENGINE:VOICE, e.g. flite:slt, festival:cmu_us_slt_arctic_hts."),
]
CacheOpt = Annotated[
    Path | None,
    typer.Option(help="Synthesised audio cache (default: $RASST_DATA_DIR/synth or .cache/synth)."),
]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@data_app.command()
def synth(
    dataset: DatasetArg,
    voice: VoiceOpt = "flite:slt",
    lang: Annotated[
        str, typer.Option("--to", help="Picks dev.en-LANG.jsonl when DATASET is a folder.")
    ] = "de",
    talk: TalkOpt = None,
    max_segments: MaxSegOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Synthesise each talk's segments at their reference offsets; print WAV and timing paths."""
    from evaluation.dataset import load_talks, resolve_dataset
    from evaluation.harness import synthesise
    from evaluation.synth import ToolMissing, default_cache_dir

    try:
        talks = load_talks(
            resolve_dataset(dataset, lang), talk_ids=talk or (), max_segments=max_segments
        )
        with _progress() as progress:
            made = synthesise(talks, voice, cache_dir or default_cache_dir(), progress)
    except (ValueError, KeyError, FileNotFoundError, ToolMissing) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for item in made:
        overruns = sum(1 for s in item.segments if s.overrun > 0)
        print(f"{item.wav}\t{item.timing_path}\t{item.duration:.1f} s\t{overruns} overruns")


def eval_command(
    dataset: DatasetArg,
    lang: Annotated[str, typer.Option("--to", help="Target language (de, zh, ja).")],
    glossary: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Glossary file, uploaded to the gateway."),
    ] = None,
    lm: Annotated[int, typer.Option(min=1, max=4, help="Chunk size = 0.96 s × lm.")] = 2,
    voice: VoiceOpt = "flite:slt",
    llm_url: Annotated[
        str | None, typer.Option(help="vLLM endpoint for the embedded gateway (translation).")
    ] = None,
    llm_model: Annotated[str | None, typer.Option(help="Model name served at --llm-url.")] = None,
    llm_mode: Annotated[
        str | None,
        typer.Option(help="Translator tier of the embedded gateway: speech, text or auto."),
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="Use this gateway instead of starting one.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default .cache/eval/…).")] = None,
    talk: TalkOpt = None,
    max_segments: MaxSegOpt = None,
    distractors: Annotated[
        int, typer.Option(min=0, help="Add N CMU-dictionary distractor terms to the glossary.")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the distractor choice.")] = 0,
    k: Annotated[int, typer.Option(min=1, help="K of recall@K.")] = 10,
    speed: Annotated[
        float, typer.Option(min=0, help="× real time; 0 = as fast as the gateway keeps up.")
    ] = 0.0,
    cache_dir: CacheOpt = None,
    workers: Annotated[
        int | None, typer.Option(help="Speech workers of the embedded gateway.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="RASST_API_KEY", help="API key for --server.")
    ] = None,
    warmup: Annotated[
        float,
        typer.Option(min=0, help="Seconds to let the gateway prepare the glossaries first."),
    ] = 30.0,
    plots: Annotated[bool, typer.Option(help="Write matplotlib plots.")] = True,
) -> None:
    """Stream a dataset's talks through the gateway and score retrieval, translation, cost."""
    from evaluation.harness import EvalConfig, run_eval
    from evaluation.synth import default_cache_dir

    if (llm_url or llm_model or llm_mode) and server:
        console.print(
            "[red]--llm-url/--llm-model/--llm-mode configure the embedded gateway; "
            "not with --server[/red]"
        )
        raise typer.Exit(2)
    config = EvalConfig(
        dataset=dataset,
        lang=lang,
        out=out or Path(".cache") / "eval" / f"{lang}-lm{lm}",
        glossary=glossary,
        lm=lm,
        voice=voice,
        llm_url=llm_url,
        llm_model=llm_model,
        llm_mode=llm_mode,
        server=server,
        api_key=api_key,
        talks=tuple(talk or ()),
        max_segments=max_segments,
        distractors=distractors,
        seed=seed,
        k=k,
        speed=speed,
        cache_dir=cache_dir or default_cache_dir(),
        workers=workers,
        warmup_seconds=warmup,
        plots=plots,
    )
    try:
        with _progress() as progress:
            report = run_eval(config, progress)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError, OSError) as exc:
        console.print(f"[red]evaluation failed:[/red] {exc}")
        raise typer.Exit(1) from None
    headline: dict[str, object] = {
        key: report["retrieval"].get(key) for key in ("recall_at_k", "precision", "overhead_ratio")
    }
    for key in ("bleu", "chrf", "term_acc", "stream_laal", "stream_laal_ca"):
        if key in report:
            headline[key] = report[key]
    console.print(f"report: {config.out / 'report.json'}")
    print(json.dumps(headline))
