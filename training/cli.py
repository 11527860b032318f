"""``rasst train``: SFT data with term_maps, LoRA fine-tuning, and the term_map ablation.

Mounted by ``cli/main.py``; heavy imports (torch, transformers, peft) happen inside the
commands. See docs/training.md for the walk-through.

Why one module past 400 lines: it is only option declarations (typer) for five commands, each
handing over to its own module at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
train_app = typer.Typer(no_args_is_help=True, add_completion=False)

LangOpt = Annotated[str, typer.Option("--to", help="Target language (de, zh, ja, ...).")]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _fail(exc: BaseException, code: int = 1) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(code)


@train_app.command("acl6060-corpus")
def acl6060_corpus_command(
    dataset: Annotated[
        Path, typer.Argument(help="ACL 60/60 dev JSONL, or its folder (dev.en-LANG.jsonl).")
    ],
    lang: LangOpt,
    out: Annotated[Path, typer.Option(help="Corpus JSONL to write.")],
    voice: Annotated[str, typer.Option(help="TTS voice ENGINE:VOICE (as rasst data synth).")] = (
        "flite:slt"
    ),
    talk: Annotated[list[str] | None, typer.Option(help="Only this talk (repeatable).")] = None,
    max_segments: Annotated[
        int | None, typer.Option(min=1, help="Only the first N segments of each talk.")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Synthesis cache (default: rasst data synth's).")
    ] = None,
) -> None:
    """Turn the ACL 60/60 dev set and its synthesised talk audio into a training corpus."""
    from evaluation.synth import default_cache_dir
    from training.acl6060 import acl6060_corpus
    from training.corpus import write_corpus

    try:
        with _progress() as progress:
            task = progress.add_task("synthesise", total=None)
            records = acl6060_corpus(
                dataset,
                lang,
                voice=voice,
                cache_dir=cache_dir or default_cache_dir(),
                talks=talk or (),
                max_segments=max_segments,
                on_segment=lambda: progress.advance(task),
            )
    except (ValueError, KeyError, FileNotFoundError, OSError) as exc:
        raise _fail(exc, 2) from None
    count = write_corpus(out, records)
    print(json.dumps({"corpus": str(out), "records": count}))


@train_app.command("slm-data")
def slm_data_command(
    corpus: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Corpus JSONL.")],
    glossary: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Glossary file (any upload format).")
    ],
    lang: LangOpt,
    out: Annotated[Path, typer.Option(help="Output folder (JSONL, stats, audio/).")],
    lm: Annotated[
        list[int] | None,
        typer.Option(min=1, max=4, help="Chunk sizes 0.96 s × lm (repeatable; default 1-4)."),
    ] = None,
    mix: Annotated[
        str, typer.Option(help="Pattern proportions, e.g. standard=0.7,none=0.15,all_wrong=0.15.")
    ] = "standard=0.7,none=0.15,all_wrong=0.15",
    max_terms: Annotated[int, typer.Option(min=1, help="Cap on entries per term_map.")] = 16,
    glossary_negatives: Annotated[
        int, typer.Option(min=0, help="Glossary-sampled negatives per chunk (see docs).")
    ] = 3,
    mined_negatives: Annotated[
        int, typer.Option(min=0, help="Hard negatives mined below the serving τ per chunk (0..N).")
    ] = 3,
    retriever: Annotated[
        bool,
        typer.Option(help="Hard negatives from the embedded retriever run over the audio."),
    ] = True,
    negative_tau: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Retrieved wrong terms down to this score are hard negatives."
        ),
    ] = 0.5,
    tags: Annotated[bool, typer.Option(help="Wrap used gold translations in <t>…</t>.")] = True,
    conversation_chunks: Annotated[
        int | None,
        typer.Option(min=1, help="Chunks per conversation (default: serving's history + 1)."),
    ] = None,
    stride: Annotated[
        int | None,
        typer.Option(min=1, help="Chunks between conversation starts (default: no overlap)."),
    ] = None,
    lag_words: Annotated[
        int, typer.Option(min=0, help="Source words a translation waits for (segment corpora).")
    ] = 2,
    seed: int = 0,
    jobs: Annotated[int, typer.Option(min=1, help="Decoding processes.")] = 1,
    name: Annotated[str, typer.Option(help="Output file stem.")] = "train",
    absolute_paths: Annotated[
        bool, typer.Option(help="Absolute WAV paths in `audios` (default: relative to --out).")
    ] = False,
    preset: Annotated[
        str,
        typer.Option(
            help="default: the pattern mix; release: the released models' term_map recipe "
            "(budgets 6/8/10, 35% empty maps without gold, score-aware noise; "
            "replaces --mix and --max-terms, docs/training.md)."
        ),
    ] = "default",
) -> None:
    """Build chat SFT data (standard / none / all-wrong term_maps) in the serving prompt format."""
    from server.settings import get_settings
    from training.builder import BuildParams, build_dataset
    from training.patterns import PatternMix
    from training.retrieval import OfflineRetrievalParams
    from training.term_maps import ReleaseRecipe, TermMapParams

    if preset not in ("default", "release"):
        raise _fail(ValueError(f"--preset must be default or release, not {preset!r}"), 2)
    recipe = ReleaseRecipe() if preset == "release" else None
    try:
        # The recipe decides every chunk's map itself: one pattern, no extra cap.
        pattern_mix = PatternMix.parse("standard=1" if recipe else mix)
    except ValueError as exc:
        raise _fail(exc, 2) from None
    retrieval = None
    if retriever:
        settings = get_settings()
        retrieval = OfflineRetrievalParams(
            cache_dir=settings.data_dir / "retrieval",
            tau=settings.retrieval_tau,
            # The recipe looks at up to 16 retrieved candidates per chunk (cap16).
            top_k=recipe.cap if recipe else settings.retrieval_top_k,
            candidates=settings.retrieval_candidates,
            hotwords=settings.asr_hotwords,
            negative_tau=min(negative_tau, settings.retrieval_tau),
        )
    params = BuildParams(
        corpus=corpus,
        glossary=glossary,
        lang=lang,
        out=out,
        name=name,
        lms=tuple(lm or (1, 2, 3, 4)),
        mix=pattern_mix,
        recipe=recipe,
        term_maps=TermMapParams(
            max_entries=recipe.cap if recipe else max_terms,
            glossary_negatives=glossary_negatives,
            mined_negatives=mined_negatives,
        ),
        seed=seed,
        tags=tags,
        retriever=retrieval,
        conversation_chunks=conversation_chunks,
        stride=stride,
        lag_words=lag_words,
        jobs=jobs,
        absolute_paths=absolute_paths,
    )
    try:
        with _progress() as progress:
            task = progress.add_task("recordings", total=None)
            result = build_dataset(params, lambda _: progress.advance(task), argv=sys.argv)
    except (ValueError, KeyError, FileNotFoundError, OSError) as exc:
        raise _fail(exc) from None
    stats = result.stats
    print(
        json.dumps(
            {
                "rows": str(result.rows),
                "stats": str(result.stats_path),
                "conversations": stats["conversations"],
                "turns": stats["turns"],
                "patterns": {k: v["chunks"] for k, v in stats["patterns"].items()},
            }
        )
    )


@train_app.command("lora")
def lora_command(
    data: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="SFT JSONL (slm-data).")
    ],
    model: Annotated[
        str, typer.Option(help="Base model: hub id or folder (Qwen/Qwen3-Omni-30B-A3B-Instruct).")
    ],
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints/, log.jsonl, exports.")],
    preset: Annotated[
        str, typer.Option(help="Hyper-parameter preset (rasst: the reference's).")
    ] = ("rasst"),
    rank: Annotated[int | None, typer.Option(min=1, help="LoRA rank [preset].")] = None,
    alpha: Annotated[int | None, typer.Option(min=1, help="LoRA alpha [preset].")] = None,
    dropout: Annotated[
        float | None, typer.Option(min=0, max=1, help="LoRA dropout [preset].")
    ] = None,
    experts: Annotated[
        bool, typer.Option(help="Also adapt the MoE experts (all linear layers, as the reference).")
    ] = True,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate [preset].")] = None,
    min_lr: Annotated[float | None, typer.Option(help="Final learning rate [preset].")] = None,
    warmup_ratio: Annotated[
        float | None, typer.Option(help="Warm-up share of steps [preset].")
    ] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay [preset].")] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data [preset].")] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after N steps.")] = None,
    micro_batch: Annotated[
        int | None, typer.Option(min=1, help="Rows per forward [preset].")
    ] = None,
    global_batch: Annotated[int | None, typer.Option(min=1, help="Rows per step [preset].")] = None,
    max_length: Annotated[int | None, typer.Option(min=16, help="Tokens per row [preset].")] = None,
    save_every: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps.")] = 100,
    keep: Annotated[int, typer.Option(min=1, help="Checkpoints kept.")] = 2,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/latest.json.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    device_map: Annotated[
        str | None, typer.Option(help="'auto': shard the model over all visible GPUs.")
    ] = None,
    dtype: Annotated[str, typer.Option(help="auto (bf16 on GPU), bf16, fp16, fp32.")] = "auto",
    gradient_checkpointing: Annotated[bool, typer.Option(help="Trade compute for memory.")] = False,
    seed: int = 0,
    export: Annotated[
        str, typer.Option(help="After training: adapter, merged, both or none.")
    ] = "adapter",
) -> None:
    """LoRA-fine-tune Qwen3-Omni's thinker on SFT data (loss on assistant turns only)."""
    import dataclasses
    import logging

    from training.lora_config import TrainParams
    from training.lora_config import preset as get_preset

    if export not in ("adapter", "merged", "both", "none"):
        raise _fail(ValueError("--export is one of adapter, merged, both, none"), 2)
    try:
        lora, optim = get_preset(preset)
        lora_changes: dict[str, Any] = {"rank": rank, "alpha": alpha, "dropout": dropout}
        if not experts:
            lora_changes["expert_parameters"] = ()
        lora = dataclasses.replace(lora, **{k: v for k, v in lora_changes.items() if v is not None})
        optim_changes: dict[str, Any] = {
            "lr": lr,
            "min_lr": min_lr,
            "warmup_ratio": warmup_ratio,
            "weight_decay": weight_decay,
            "epochs": epochs,
            "max_steps": max_steps,
            "micro_batch": micro_batch,
            "global_batch": global_batch,
            "max_length": max_length,
        }
        optim = dataclasses.replace(
            optim, **{k: v for k, v in optim_changes.items() if v is not None}
        )
    except ValueError as exc:
        raise _fail(exc, 2) from None
    params = TrainParams(
        model=model,
        data=data,
        out=out,
        lora=lora,
        optim=optim,
        resume=resume,
        save_every=save_every,
        keep_checkpoints=keep,
        seed=seed,
        dtype=dtype,
        device=device,
        device_map=device_map,
        gradient_checkpointing=gradient_checkpointing,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from training.lora_train import LoraTrainer

    try:
        trainer = LoraTrainer(params)
        result = trainer.fit()
    except (ValueError, RuntimeError, OSError) as exc:
        raise _fail(exc) from None
    summary: dict[str, object] = {
        "step": result.step,
        "loss": result.loss,
        "checkpoint": str(result.checkpoint),
    }
    if result.checkpoint is not None and export != "none":
        summary.update(_export(result.checkpoint, model, out, export, trainer.dtype))
    print(json.dumps(summary))


def _export(checkpoint: Path, model: str, out: Path, kind: str, dtype: object) -> dict[str, str]:
    from training.lora_export import export_adapter, export_merged
    from training.lora_train import ADAPTER_DIR

    done: dict[str, str] = {}
    adapter = checkpoint / ADAPTER_DIR
    if kind in ("adapter", "both"):
        done["adapter"] = str(export_adapter(adapter, out / "export" / "adapter", model))
    if kind in ("merged", "both"):
        done["merged"] = str(export_merged(model, adapter, out / "export" / "merged", dtype))  # type: ignore[arg-type]
    return done


@train_app.command("export")
def export_command(
    run: Annotated[
        Path, typer.Argument(exists=True, help="A `rasst train lora` run folder, or a checkpoint.")
    ],
    model: Annotated[str, typer.Option(help="The base model the adapter was trained on.")],
    merged: Annotated[
        bool, typer.Option(help="Merge into the base (default: adapter only).")
    ] = False,
    dtype: Annotated[str, typer.Option(help="Merged weights' dtype: bf16, fp16, fp32.")] = "bf16",
) -> None:
    """Export the newest checkpoint of a run: adapter (vLLM --lora-modules) or merged model."""
    import torch

    from training.lora_train import latest_checkpoint, resolve_dtype

    checkpoint = latest_checkpoint(run) or run
    if not (checkpoint / "adapter").is_dir():
        raise _fail(FileNotFoundError(f"no checkpoint with an adapter/ folder at {run}"), 2)
    out = run if latest_checkpoint(run) else checkpoint
    kind = "merged" if merged else "adapter"
    print(
        json.dumps(
            _export(
                checkpoint,
                model,
                out,
                kind,
                resolve_dtype(dtype, torch.device("cpu")),
            )
        )
    )


@train_app.command("ablation")
def ablation_command(
    dataset: Annotated[
        Path, typer.Argument(help="Dataset JSONL (ACL 60/60 layout), or its folder.")
    ],
    lang: LangOpt,
    glossary: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="The gold glossary (any format).")
    ],
    llm_url: Annotated[
        str | None, typer.Option(help="vLLM endpoint for an embedded gateway.")
    ] = None,
    llm_model: Annotated[
        str | None, typer.Option(help="Served model (or LoRA module) name at --llm-url.")
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="Use this gateway (already pointed at the model).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="RASST_API_KEY", help="API key for --server.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default .cache/ablation/…).")
    ] = None,
    lm: Annotated[int, typer.Option(min=1, max=4, help="Chunk size = 0.96 s × lm.")] = 2,
    voice: Annotated[str, typer.Option(help="TTS voice ENGINE:VOICE.")] = "flite:slt",
    talk: Annotated[list[str] | None, typer.Option(help="Only this talk (repeatable).")] = None,
    max_segments: Annotated[
        int | None, typer.Option(min=1, help="Only the first N segments of each talk.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random glossary's shuffle.")] = 0,
    speed: Annotated[
        float, typer.Option(min=0, help="× real time; 0 = as fast as possible.")
    ] = 0.0,
    cache_dir: Annotated[Path | None, typer.Option(help="Synthesised audio cache.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Speech workers of an embedded gateway.")
    ] = None,
    warmup: Annotated[
        float, typer.Option(min=0, help="Seconds to prepare a glossary first.")
    ] = 30.0,
) -> None:
    """Evaluate a served model with no terms, correct terms and random (wrong) terms."""
    from evaluation.harness import EvalConfig
    from evaluation.synth import default_cache_dir
    from training.ablation import AblationConfig, ablation_table, run_ablation

    if (llm_url or llm_model) and server:
        raise _fail(
            ValueError("--llm-url/--llm-model configure an embedded gateway; not with --server"), 2
        )
    if not (llm_url or server):
        raise _fail(
            ValueError("the ablation needs a model: --llm-url (and --llm-model) or --server"), 2
        )
    base = EvalConfig(
        dataset=dataset,
        lang=lang,
        out=out or Path(".cache") / "ablation" / f"{lang}-lm{lm}",
        glossary=glossary,
        lm=lm,
        voice=voice,
        llm_url=llm_url,
        llm_model=llm_model,
        server=server,
        api_key=api_key,
        talks=tuple(talk or ()),
        max_segments=max_segments,
        seed=seed,
        speed=speed,
        cache_dir=cache_dir or default_cache_dir(),
        workers=workers,
        warmup_seconds=warmup,
        plots=False,
    )
    try:
        with _progress() as progress:
            results = run_ablation(AblationConfig(base, seed=seed), progress)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError, OSError) as exc:
        raise _fail(exc) from None
    console.print(f"results: {base.out / 'ablation.md'}")
    print(ablation_table(results))
