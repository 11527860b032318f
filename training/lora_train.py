"""``rasst train lora``: LoRA on Qwen3-Omni's thinker (transformers + peft), resumable.

The full ``Qwen3OmniMoeForConditionalGeneration`` is loaded without its talker (vLLM
serves the thinker only), LoRA goes on the thinker's language model
(:mod:`training.lora_config`), and the audio and vision encoders stay frozen. The
loss is the mean cross-entropy over the assistant tokens of a global batch
(:mod:`training.sft_dataset`), plus the MoE router's load-balancing loss.

Checkpoints (every ``save_every`` steps and at the end) live in
``OUT/checkpoints/step-NNNNNNN/``: the adapter (peft), and ``trainer_state.pt`` with the
optimiser, the LR schedule, the step, the data position and RNG states.
``OUT/latest.json`` names the newest complete one; ``--resume`` continues from it, with
the same data order, so an interrupted run ends where an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.lora_config import FROZEN_TOWERS, LoraSpec, OptimSpec, TrainParams
from training.sft_dataset import (
    IGNORE_INDEX,
    ConversationEncoder,
    EncodedExample,
    collate,
    iter_examples,
    read_rows,
)

log = logging.getLogger(__name__)

LATEST = "latest.json"
STATE_FILE = "trainer_state.pt"
ADAPTER_DIR = "adapter"


@dataclass(slots=True)
class TrainResult:
    step: int
    loss: float | None
    checkpoint: Path | None
    history: list[dict[str, float]]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]


def load_base_model(model: str, dtype: torch.dtype, device_map: str | None = None) -> Any:
    """The full Qwen3-Omni without its talker (its weights in the checkpoint are skipped)."""
    from transformers import Qwen3OmniMoeForConditionalGeneration

    kwargs: dict[str, Any] = {"dtype": dtype, "enable_audio_output": False}
    if device_map is not None:
        kwargs["device_map"] = device_map
    return Qwen3OmniMoeForConditionalGeneration.from_pretrained(model, **kwargs)


def lora_config(spec: LoraSpec, *, inference: bool = False) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=list(spec.modules),
        target_parameters=list(spec.expert_parameters) or None,
        exclude_modules=FROZEN_TOWERS,
        inference_mode=inference,
    )


@contextlib.contextmanager
def peft_quietly() -> Iterator[None]:
    """peft 0.21 reads transformers 5's deprecated ``is_gradient_checkpointing``; the
    FutureWarning it triggers is theirs to fix, not ours to see on every load."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
        )
        yield


def check_trainable(model: torch.nn.Module) -> int:
    """Trainable parameter count; refuses anything trainable outside LoRA on the language model."""
    total = 0
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if "lora_" not in name or ".audio_tower." in name or ".visual." in name:
            raise RuntimeError(f"{name} would be trained: only LoRA on the language model may be")
        total += param.numel()
    if total == 0:
        raise RuntimeError("no LoRA parameter to train: check the target modules")
    return total


def lr_lambda(optim: OptimSpec, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to ``min_lr`` (as a factor of ``lr``)."""
    warmup = max(1, math.ceil(optim.warmup_ratio * total_steps)) if optim.warmup_ratio > 0 else 0
    floor = optim.min_lr / optim.lr if optim.lr > 0 else 0.0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class LoraTrainer:
    def __init__(self, params: TrainParams) -> None:
        from peft import get_peft_model

        self.params = params
        optim = params.optim
        if optim.global_batch % optim.micro_batch:
            raise ValueError("global_batch must be a multiple of micro_batch")
        self.accum = optim.global_batch // optim.micro_batch
        random.seed(params.seed)
        np.random.seed(params.seed)
        torch.manual_seed(params.seed)
        self.device = resolve_device(params.device)
        self.dtype = resolve_dtype(params.dtype, self.device)
        self.rows = read_rows(params.data)
        if not self.rows:
            raise ValueError(f"{params.data} has no rows")
        self.base = params.data.resolve().parent
        self.encoder = ConversationEncoder.from_pretrained(params.model, optim.max_length)
        model = load_base_model(params.model, self.dtype, params.device_map)
        model.config.thinker_config.text_config.router_aux_loss_coef = optim.router_aux_loss
        if params.device_map is None:
            model.to(self.device)
        model.requires_grad_(False)
        if params.gradient_checkpointing:
            model.thinker.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        with peft_quietly():
            self.model = get_peft_model(model, lora_config(params.lora))
        self.trainable = check_trainable(self.model)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=optim.lr, weight_decay=optim.weight_decay)
        steps_per_epoch = math.ceil(len(self.rows) / optim.global_batch)
        self.total_steps = optim.max_steps or max(1, math.ceil(optim.epochs * steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(optim, self.total_steps)
        )
        self.step = 0
        self.epoch = 0
        self.position = 0  # rows of the current epoch's order already consumed
        self.history: list[dict[str, float]] = []
        if params.resume:
            self._resume()

    # -- data ---------------------------------------------------------------------------

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.rows)))
        random.Random(self.params.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def _batches(self) -> Iterator[list[EncodedExample]]:
        """Micro-batches from the saved position on, epoch after epoch."""
        micro = self.params.optim.micro_batch
        while True:
            order = self._order(self.epoch)
            pending: list[EncodedExample] = []
            for index in order[self.position :]:
                self.position += 1
                example = self.encoder.encode(self.rows[index], self.base)
                if example is None:
                    log.warning("row %d: its first turn is longer than max_length; skipped", index)
                    continue
                pending.append(example)
                if len(pending) == micro:
                    yield pending
                    pending = []
            if pending:
                yield pending
            self.epoch += 1
            self.position = 0

    # -- training -----------------------------------------------------------------------

    @property
    def thinker(self) -> Any:
        return self.model.base_model.model.thinker

    def _forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Summed token cross-entropy of the batch and the router's aux loss."""
        inputs = {k: v.to(self.device) for k, v in batch.items() if k != "labels"}
        if "input_features" in inputs:
            inputs["input_features"] = inputs["input_features"].to(self.dtype)
        aux = self.params.optim.router_aux_loss > 0
        out = self.thinker(**inputs, output_router_logits=aux, use_cache=False)
        logits = out.logits[:, :-1].float()
        labels = batch["labels"][:, 1:].to(logits.device)
        loss_sum = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        return loss_sum, (out.aux_loss if aux else None)

    def fit(self, on_log: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
        params = self.params
        self.model.train()
        batches = self._batches()
        started = time.monotonic()
        last_loss: float | None = None
        checkpoint: Path | None = None
        while self.step < self.total_steps:
            micro_batches = [next(batches) for _ in range(self.accum)]
            tokens = sum(e.label_tokens for mb in micro_batches for e in mb)
            self.optimizer.zero_grad(set_to_none=True)
            loss_total = 0.0
            for micro in micro_batches:
                batch = collate(micro, self.encoder.tokenizer.pad_token_id)
                loss_sum, aux = self._forward(batch)
                loss = loss_sum / max(1, tokens)
                if aux is not None:
                    loss = loss + params.optim.router_aux_loss * aux.float() / self.accum
                loss.backward()
                loss_total += float(loss_sum.detach()) / max(1, tokens)
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            grad_norm = (
                float(torch.nn.utils.clip_grad_norm_(trainable, params.optim.grad_clip))
                if params.optim.grad_clip > 0
                else 0.0
            )
            lr = float(self.scheduler.get_last_lr()[0])
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            last_loss = loss_total
            entry = {
                "step": self.step,
                "loss": round(loss_total, 5),
                "lr": lr,
                "grad_norm": round(grad_norm, 4),
                "tokens": tokens,
                "epoch": self.epoch,
                "seconds": round(time.monotonic() - started, 1),
            }
            self.history.append(entry)
            if self.step % params.log_every == 0 or self.step == self.total_steps:
                log.info("%s", " ".join(f"{k}={v}" for k, v in entry.items()))
                self._append_log(entry)
                if on_log is not None:
                    on_log(entry)
            if self.step % params.save_every == 0 or self.step == self.total_steps:
                checkpoint = self.save()
        return TrainResult(self.step, last_loss, checkpoint, self.history)

    def loss_on(self, rows: list[dict[str, Any]]) -> float:
        """Mean assistant-token loss over ``rows`` (no update; for checks and evaluation)."""
        self.model.eval()
        total = tokens = 0.0
        with torch.no_grad():
            for _, example in iter_examples(self.encoder, rows, self.base, range(len(rows))):
                loss_sum, _ = self._forward(collate([example], self.encoder.tokenizer.pad_token_id))
                total += float(loss_sum)
                tokens += example.label_tokens
        self.model.train()
        return total / max(1.0, tokens)

    # -- checkpoints --------------------------------------------------------------------

    def _append_log(self, entry: dict[str, float]) -> None:
        self.params.out.mkdir(parents=True, exist_ok=True)
        with (self.params.out / "log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def save(self) -> Path:
        """Write a checkpoint (atomically: a complete folder, then ``latest.json``)."""
        out = self.params.out
        folder = out / "checkpoints" / f"step-{self.step:07d}"
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        self.model.save_pretrained(partial / ADAPTER_DIR)
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "position": self.position,
                "total_steps": self.total_steps,
                "python_rng": random.getstate(),
                "numpy_rng": np.random.get_state(),
                "torch_rng": torch.get_rng_state(),
            },
            partial / STATE_FILE,
        )
        (partial / "train_params.json").write_text(
            json.dumps(_jsonable(asdict(self.params)), indent=1), encoding="utf-8"
        )
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
        latest = out / LATEST
        tmp = latest.with_suffix(".tmp")
        tmp.write_text(json.dumps({"step": self.step, "path": str(folder.relative_to(out))}))
        tmp.replace(latest)
        self._prune()
        return folder

    def _prune(self) -> None:
        folders = sorted((self.params.out / "checkpoints").glob("step-???????"))
        for old in folders[: max(0, len(folders) - self.params.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)

    def _resume(self) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        folder = latest_checkpoint(self.params.out)
        if folder is None:
            log.info("nothing to resume in %s; starting from scratch", self.params.out)
            return
        weights = load_file(str(folder / ADAPTER_DIR / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(self.model, weights)
        unexpected = list(getattr(result, "unexpected_keys", None) or [])
        if unexpected:
            raise RuntimeError(f"checkpoint {folder} does not fit this model: {unexpected[:5]}")
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        random.setstate(state["python_rng"])
        np.random.set_state(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s at step %d", folder, self.step)


def latest_checkpoint(out: Path) -> Path | None:
    marker = out / LATEST
    if not marker.is_file():
        return None
    folder = out / json.loads(marker.read_text())["path"]
    return folder if (folder / STATE_FILE).is_file() else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def train(params: TrainParams) -> TrainResult:
    return LoraTrainer(params).fit()
