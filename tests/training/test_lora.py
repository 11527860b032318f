"""LoRA on a tiny random Qwen3-Omni: masking, learning, resuming, adapter and merged export."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.tiny_qwen3_omni import build as build_tiny_model
from tests.training.support import write_synthetic_corpus
from training.builder import BuildParams, build_dataset
from training.lora_config import LoraSpec, OptimSpec, TrainParams
from training.lora_export import export_adapter, export_merged
from training.lora_train import ADAPTER_DIR, LoraTrainer, load_base_model, peft_quietly
from training.patterns import PatternMix
from training.sft_dataset import IGNORE_INDEX, ConversationEncoder, collate, read_rows


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("lora")
    build_tiny_model(root / "model")
    corpus, glossary = write_synthetic_corpus(root / "corpus")
    build_dataset(
        BuildParams(
            corpus=corpus,
            glossary=glossary,
            lang="de",
            out=root / "sft",
            lms=(2,),
            conversation_chunks=2,
            mix=PatternMix(0.5, 0.25, 0.25),
        )
    )
    rows = (root / "sft" / "train.jsonl").read_text().splitlines()
    (root / "sft" / "toy.jsonl").write_text("\n".join(rows[:2]) + "\n")
    yield root


def _params(root: Path, out: str, **optim: object) -> TrainParams:
    return TrainParams(
        model=str(root / "model"),
        data=root / "sft" / "toy.jsonl",
        out=root / out,
        lora=LoraSpec(rank=8, alpha=16, dropout=0.0),
        optim=dataclasses.replace(OptimSpec(global_batch=2, warmup_ratio=0.0), **optim),  # type: ignore[arg-type]
        log_every=1,
        save_every=2,
    )


def _logits(thinker: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        return thinker(**inputs, use_cache=False).logits


def test_loss_covers_assistant_tokens_only(workspace: Path) -> None:
    encoder = ConversationEncoder.from_pretrained(str(workspace / "model"))
    rows = read_rows(workspace / "sft" / "toy.jsonl")
    example = encoder.encode(rows[0], workspace / "sft")
    assert example is not None and example.input_features is not None
    labelled = example.input_ids[example.labels != IGNORE_INDEX]
    answers = [m["content"] for m in rows[0]["messages"] if m["role"] == "assistant"]
    assert encoder.tokenizer.decode(labelled) == "".join(a + "<|im_end|>" for a in answers)
    # Every placeholder became as many audio tokens as the encoder outputs for its clip.
    audio = example.input_ids == encoder.audio_token_id
    _, _, counts = encoder.audio_features(
        [np.zeros(30720, dtype=np.float32)] * len(rows[0]["audios"])
    )
    assert int(audio.sum()) == sum(counts)
    assert not bool((example.labels[audio] != IGNORE_INDEX).any())
    # Too long: whole turns are dropped from the end, never half a turn or half an audio.
    short = ConversationEncoder.from_pretrained(
        str(workspace / "model"), max_length=len(example.input_ids) - 1
    )
    cut = short.encode(rows[0], workspace / "sft")
    assert cut is not None and cut.turns == example.turns - 1
    assert cut.input_features is not None and len(cut.input_features) == example.turns - 1
    assert torch.equal(cut.input_ids, example.input_ids[: len(cut.input_ids)])
    assert encoder.tokenizer.decode(cut.input_ids[cut.labels != IGNORE_INDEX]).endswith(
        "<|im_end|>"
    )


def test_a_few_steps_overfit_a_toy_set(workspace: Path) -> None:
    trainer = LoraTrainer(_params(workspace, "overfit", lr=2e-2, min_lr=2e-2, max_steps=8))
    before = trainer.loss_on(trainer.rows)
    result = trainer.fit()
    after = trainer.loss_on(trainer.rows)
    assert result.step == 8
    assert after < before - 0.2, (before, after, [h["loss"] for h in result.history])
    # Only LoRA weights of the language model moved: the towers are frozen.
    assert trainer.trainable > 0
    assert all(
        ".audio_tower." not in n and ".visual." not in n
        for n, p in trainer.model.named_parameters()
        if p.requires_grad
    )


@pytest.fixture(scope="module")
def trained(workspace: Path) -> LoraTrainer:
    trainer = LoraTrainer(_params(workspace, "full", max_steps=4))
    trainer.fit()
    return trainer


def test_resume_continues_the_step_count_and_the_run(workspace: Path, trained: LoraTrainer) -> None:
    first = LoraTrainer(_params(workspace, "resumed", max_steps=4))
    first.total_steps = 2  # interrupted after two of four steps (a checkpoint is written)
    first.fit()
    assert json.loads((workspace / "resumed" / "latest.json").read_text())["step"] == 2
    second = LoraTrainer(
        dataclasses.replace(_params(workspace, "resumed", max_steps=4), resume=True)
    )
    assert second.step == 2
    result = second.fit()
    assert [h["step"] for h in result.history] == [3, 4]
    logged = [
        json.loads(x)["step"]
        for x in (workspace / "resumed" / "log.jsonl").read_text().splitlines()
    ]
    assert logged == [1, 2, 3, 4]
    # Same data order, schedule and optimiser state: the same weights as an uninterrupted run.
    expected = {n: p for n, p in trained.model.named_parameters() if p.requires_grad}
    for name, param in second.model.named_parameters():
        if param.requires_grad:
            assert torch.allclose(param, expected[name], atol=1e-6), name


def test_adapter_round_trips_and_merged_export_matches(
    workspace: Path, trained: LoraTrainer
) -> None:
    from peft import PeftModel
    from transformers import Qwen3OmniMoeForConditionalGeneration

    example = trained.encoder.encode(trained.rows[0], trained.base)
    assert example is not None
    batch = collate([example], trained.encoder.tokenizer.pad_token_id)
    trained.model.eval()
    reference = _logits(trained.thinker, batch)
    with trained.model.disable_adapter():
        base_logits = _logits(trained.thinker, batch)
    assert not torch.allclose(reference, base_logits, atol=1e-4)  # the adapter does something

    checkpoint = workspace / "full" / "checkpoints" / "step-0000004" / ADAPTER_DIR
    exported = export_adapter(checkpoint, workspace / "full" / "export" / "adapter")
    for adapter in (checkpoint, exported):
        with peft_quietly():
            loaded = PeftModel.from_pretrained(
                load_base_model(str(workspace / "model"), torch.float32), str(adapter)
            )
        loaded.eval()
        assert torch.allclose(_logits(loaded.base_model.model.thinker, batch), reference, atol=1e-5)

    merged_dir = export_merged(
        str(workspace / "model"),
        checkpoint,
        workspace / "full" / "export" / "merged",
        torch.float32,
    )
    assert (merged_dir / "tokenizer.json").is_file() and (
        merged_dir / "chat_template.jinja"
    ).is_file()
    merged = Qwen3OmniMoeForConditionalGeneration.from_pretrained(merged_dir, dtype=torch.float32)
    assert torch.allclose(_logits(merged.thinker, batch), reference, atol=1e-4)


def test_cli_trains_resumes_and_exports(workspace: Path) -> None:
    from typer.testing import CliRunner

    from training.cli import train_app

    runner = CliRunner()
    out = workspace / "cli"
    common = [
        "lora",
        str(workspace / "sft" / "toy.jsonl"),
        "--model",
        str(workspace / "model"),
        "--out",
        str(out),
        "--global-batch",
        "1",
        "--rank",
        "4",
        "--alpha",
        "8",
    ]
    first = runner.invoke(train_app, [*common, "--max-steps", "1", "--export", "none"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(
        train_app, [*common, "--max-steps", "2", "--resume", "--export", "adapter"]
    )
    assert second.exit_code == 0, second.output
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["step"] == 2
    assert (Path(summary["adapter"]) / "adapter_model.safetensors").is_file()
    exported = runner.invoke(train_app, ["export", str(out), "--model", str(workspace / "model")])
    assert exported.exit_code == 0, exported.output
    refused = runner.invoke(train_app, [*common, "--dropout", "0.1"])
    assert refused.exit_code == 2 and "dropout" in refused.output
