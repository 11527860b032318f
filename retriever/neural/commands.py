"""``python -m retriever.train``: fit, evaluate, and build TTS training data."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Train and evaluate the neural (Qwen3-Omni + BGE-M3) term retriever.", no_args_is_help=True
)


def _ks(value: str) -> tuple[int, ...]:
    return tuple(int(k) for k in value.split(",") if k.strip())


@app.command()
def fit(
    train: Annotated[Path, typer.Option(help="training JSONL (see docs/neural-retriever.md)")],
    out: Annotated[Path, typer.Option(help="output directory: latest/, best/ adapters")],
    dev: Annotated[Path | None, typer.Option(help="dev JSONL for recall@K")] = None,
    bank: Annotated[Path | None, typer.Option(help="extra negative terms, one per line")] = None,
    pooling: Annotated[str, typer.Option(help="maxsim (release) or attention (paper)")] = "maxsim",
    preset: Annotated[str, typer.Option(help="LoRA preset: release or paper")] = "release",
    audio_model: str = "Atotti/Qwen3-Omni-AudioTransformer",
    text_model: str = "BAAI/bge-m3",
    init_checkpoint: Annotated[
        str | None, typer.Option(help="start from a released-layout .pt")
    ] = None,
    steps: int = 1000,
    batch_size: int = 8,
    accum: Annotated[int, typer.Option(help="micro-batches per optimiser step")] = 1,
    lr: float = 1e-4,
    warmup_steps: int = 50,
    hard_negatives: int = 64,
    refresh_every: int = 200,
    crop_seconds: float = 1.92,
    eval_every: int = 200,
    save_every: int = 200,
    recall_at: str = "1,5,10",
    gradient_checkpointing: bool = False,
    resume: bool = False,
    export_released: Annotated[
        Path | None, typer.Option(help="also write the released .pt layout")
    ] = None,
    device: str | None = None,
    seed: int = 0,
) -> None:
    """Train LoRA adapters (multi-positive InfoNCE, mined hard negatives, recall@K on --dev)."""
    from retriever.neural.train import TrainParams, model_config
    from retriever.neural.train import train as run_training

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    params = TrainParams(
        train=train,
        out=out,
        dev=dev,
        bank=bank,
        model=model_config(pooling, preset, audio_model, text_model, init_checkpoint, device),
        steps=steps,
        batch_size=batch_size,
        accum=accum,
        lr=lr,
        warmup_steps=warmup_steps,
        hard_negatives=hard_negatives,
        refresh_every=refresh_every,
        crop_seconds=crop_seconds,
        eval_every=eval_every,
        save_every=save_every,
        recall_at=_ks(recall_at),
        gradient_checkpointing=gradient_checkpointing,
        resume=resume,
        export_released=export_released,
        seed=seed,
    )
    result = run_training(params)
    typer.echo(
        json.dumps(
            {"step": result.step, "loss": result.loss, "recall": result.recall, "best": result.best}
        )
    )


@app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Option(help="JSONL with terms to find")],
    adapters: Annotated[Path | None, typer.Option(help="our trainer's adapter directory")] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="released-layout .pt (or hf://repo/file)")
    ] = None,
    pooling: str = "maxsim",
    bank: Path | None = None,
    recall_at: str = "1,5,10",
    crop_seconds: float = 1.92,
    device: str | None = None,
) -> None:
    """Recall@K of a trained retriever on a JSONL set (its terms + ``--bank`` as the glossary)."""
    from retriever.neural.config import NeuralRetrieverConfig
    from retriever.neural.data import iter_bank, read_jsonl, read_wav
    from retriever.neural.models import build_models
    from retriever.neural.train import TermBank, TrainParams, recall_at_k

    config = (
        NeuralRetrieverConfig.from_adapters(adapters, device=device)
        if adapters is not None
        else NeuralRetrieverConfig(pooling=pooling, checkpoint=checkpoint, device=device)  # type: ignore[arg-type]
    )
    models = build_models(config)
    records = read_jsonl(data)
    terms = [t.text for r in records for t in r.terms] + (list(iter_bank(bank)) if bank else [])
    params = TrainParams(
        train=data, out=Path("."), recall_at=_ks(recall_at), crop_seconds=crop_seconds
    )
    result = recall_at_k(
        models, TermBank(terms), [read_wav(r.audio) for r in records], records, params
    )
    typer.echo(json.dumps({f"recall@{k}": v for k, v in result.items()}))


@app.command("build-data")
def build_data(
    glossary: Annotated[
        Path, typer.Option(help="glossary file (CSV/TSV/JSON/TBX/TMX) or terms.txt")
    ],
    out: Annotated[Path, typer.Option(help="output directory (audio/ + train.jsonl)")],
    sentences: Annotated[
        Path | None, typer.Option(help="English sentences, one per line (e.g. ACL dev)")
    ] = None,
    per_term: int = 3,
    voice: str = "slt",
    seed: int = 0,
) -> None:
    """Synthesise term-bearing utterances with flite and write the training JSONL."""
    from retriever.neural.data_builder import BuildParams, build_dataset, load_terms

    corpus = sentences.read_text(encoding="utf-8").splitlines() if sentences else []
    path = build_dataset(
        load_terms(glossary),
        BuildParams(out=out, per_term=per_term, voice=voice, seed=seed),
        corpus,
    )
    typer.echo(str(path))


def main() -> None:
    app()
