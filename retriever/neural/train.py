"""Training the dual encoder: multi-positive InfoNCE with mined hard negatives.

``python -m retriever.train fit --train train.jsonl --dev dev.jsonl --out runs/x``
(see ``docs/neural-retriever.md``). Per optimiser step:

1. ``accum`` micro-batches of audio crops (:func:`retriever.neural.data.crop`),
   each encoded by the speech tower (one flat forward pass);
2. hard negatives per crop, mined from the term bank (every training and dev
   term plus ``--bank``) with FAISS against bank vectors that are refreshed
   with the current text tower every ``refresh_every`` steps (stale vectors
   in between: re-encoding a 100k bank each step would dominate training);
3. the batch's columns: every positive term of the batch plus the mined
   negatives, encoded by the text tower with gradients;
4. multi-positive InfoNCE: each (crop, positive term) pair is a softmax over
   that positive and the crop's negatives. The crop's *other* positives are
   masked out of the denominator, and a term shared by two crops is one
   column, positive for both, so it is never pushed away from either.

Only LoRA weights and the speech heads train; the base weights stay frozen.

Why one module past 400 lines: the loss, the batch sampler and the training loop are one
recipe (the release's); split, the recipe could no longer be read top to bottom.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from retriever.neural import checkpoint
from retriever.neural.config import NeuralRetrieverConfig
from retriever.neural.data import Example, Record, crop, iter_bank, read_jsonl, read_wav
from retriever.neural.features import LogMelFrontend
from retriever.neural.lora import preset
from retriever.neural.models import RetrieverModels, build_models, trainable_parameters
from retriever.neural.search import merge_grouped
from retriever.neural.speech import SpeechEmbeddings, flatten_features
from retriever.neural.text import encode_terms, tokenize

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainParams:
    train: Path
    out: Path
    dev: Path | None = None
    bank: Path | None = None
    model: NeuralRetrieverConfig = field(default_factory=NeuralRetrieverConfig)
    steps: int = 1000
    batch_size: int = 8
    accum: int = 1  # micro-batches per optimiser step
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 50
    grad_clip: float = 1.0
    hard_negatives: int = 64  # per crop (the release mined 1024 with batch 8192)
    refresh_every: int = 200  # steps between term-bank re-encodings
    crop_seconds: float = 1.92
    eval_every: int = 200
    save_every: int = 200
    recall_at: tuple[int, ...] = (1, 5, 10)
    seed: int = 0
    gradient_checkpointing: bool = False
    resume: bool = False  # continue from out/latest (adapters + optimiser)
    export_released: Path | None = None  # also write the released .pt layout at the end
    log_every: int = 10


@dataclass(slots=True)
class TrainResult:
    step: int
    loss: float
    recall: dict[int, float]
    best: dict[int, float]
    history: list[dict[str, float]]


def multi_positive_infonce(
    scores: torch.Tensor, positives: torch.Tensor, scale: torch.Tensor | float
) -> torch.Tensor:
    """Mean over (row, positive column) pairs of −log softmax against the row's negatives.

    ``scores`` ``(B, C)`` similarities, ``positives`` ``(B, C)`` bool. For the pair
    ``(b, p)`` the denominator is ``exp(l_bp) + Σ_{c ∉ pos(b)} exp(l_bc)``: the
    row's other positives are masked out. Rows without positives add nothing.
    """
    logits = scores.float() * scale
    negatives = logits.masked_fill(positives, float("-inf"))
    neg_lse = torch.logsumexp(negatives, dim=1, keepdim=True)  # −inf when a row has no negatives
    per_pair = torch.logaddexp(logits, neg_lse) - logits
    selected = per_pair[positives]
    if selected.numel() == 0:
        return logits.sum() * 0.0  # keeps the graph (and DDP-style hooks) intact
    return selected.mean()


def _norm(term: str) -> str:
    return " ".join(term.lower().split())


class TermBank:
    """All candidate terms and their (periodically refreshed) vectors in a FAISS index."""

    def __init__(self, terms: Sequence[str]) -> None:
        seen: dict[str, str] = {}
        for t in terms:
            seen.setdefault(_norm(t), t)
        self.terms = list(seen.values())
        self.key_to_id = {k: i for i, k in enumerate(seen)}
        self._index: Any = None
        self.vectors: np.ndarray | None = None

    def refresh(self, models: RetrieverModels, batch_size: int = 256) -> None:
        import faiss

        was_training = models.text.training
        models.text.eval()
        vecs = encode_terms(
            models.text,
            models.tokenizer,
            self.terms,
            models.config.max_term_tokens,
            batch_size,
            models.device,
        )
        models.text.train(was_training)
        self.vectors = np.ascontiguousarray(vecs.float().numpy(), dtype=np.float32)
        index = faiss.IndexFlatIP(self.vectors.shape[1])
        index.add(self.vectors)
        self._index = index

    def mine(self, emb: SpeechEmbeddings, positives: Sequence[set[int]], n: int) -> list[list[int]]:
        """Per row: the ``n`` highest-scoring bank terms that are not among its positives."""
        if self._index is None or n <= 0:
            return [[] for _ in positives]
        k = min(len(self.terms), n + max((len(p) for p in positives), default=0))
        vectors = emb.vectors.detach().float().cpu().numpy()
        if emb.valid is None:
            scores, ids = self._index.search(np.ascontiguousarray(vectors), k)
        else:
            valid = emb.valid.cpu().numpy()
            rows = np.ascontiguousarray(vectors[valid])
            owners = np.nonzero(valid)[0]
            row_scores, row_ids = self._index.search(rows, k)
            ids, scores = merge_grouped(row_ids, row_scores, owners, len(positives), k)
        out: list[list[int]] = []
        for b, pos in enumerate(positives):
            out.append([int(i) for i in ids[b] if i >= 0 and int(i) not in pos][:n])
        return out


class Trainer:
    def __init__(
        self,
        params: TrainParams,
        build: dict[str, Any] | None = None,
        on_log: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        self.params = params
        self._on_log = on_log
        random.seed(params.seed)
        np.random.seed(params.seed)
        torch.manual_seed(params.seed)
        self.rng = np.random.default_rng(params.seed)
        config = params.model
        latest = params.out / "latest"
        if params.resume and (latest / checkpoint.META_FILE).is_file():
            config = NeuralRetrieverConfig.from_adapters(latest, device=config.device)
        self.models = build_models(config, trainable=True, **(build or {}))
        if params.gradient_checkpointing:
            self.models.speech.audio_encoder.gradient_checkpointing_enable(  # type: ignore[operator]
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        self.params_to_train = trainable_parameters(self.models)
        # Trainable weights in fp32 even when the frozen base runs in bf16.
        for p in self.params_to_train:
            p.data = p.data.float()
        self.optimizer = torch.optim.AdamW(
            self.params_to_train, lr=params.lr, weight_decay=params.weight_decay
        )
        self.step = 0
        if params.resume and (latest / "trainer_state.pt").is_file():
            state = torch.load(latest / "trainer_state.pt", map_location="cpu", weights_only=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.step = int(state["step"])
        self.frontend = LogMelFrontend("cpu")
        self.train_records = read_jsonl(params.train)
        self.dev_records = read_jsonl(params.dev) if params.dev else []
        if not self.train_records:
            raise ValueError(f"{params.train} has no records")
        bank_terms = [t.text for r in self.train_records + self.dev_records for t in r.terms]
        if params.bank is not None:
            bank_terms += list(iter_bank(params.bank))
        self.bank = TermBank(bank_terms)
        self._audio_cache: dict[Path, np.ndarray] = {}
        self.history: list[dict[str, float]] = []

    # -- data ------------------------------------------------------------------

    def _audio(self, path: Path) -> np.ndarray:
        audio = self._audio_cache.get(path)
        if audio is None:
            audio = read_wav(path)
            if len(self._audio_cache) > 2048:  # bounded: long corpora stream through
                self._audio_cache.pop(next(iter(self._audio_cache)))
            self._audio_cache[path] = audio
        return audio

    def _examples(self, records: Sequence[Record], rng: np.random.Generator) -> list[Example]:
        return [crop(r, self._audio(r.audio), self.params.crop_seconds, rng) for r in records]

    def _embed(self, examples: Sequence[Example]) -> SpeechEmbeddings:
        mels = self.frontend([e.audio for e in examples])
        features, lens = flatten_features(mels)
        device = self.models.device
        with self._autocast():
            return self.models.speech(features.to(device, self.models.dtype), lens.to(device))

    def _autocast(self) -> Any:
        if self.models.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext()

    # -- training --------------------------------------------------------------

    def _lr_at(self, step: int) -> float:
        p = self.params
        if step < p.warmup_steps:
            return p.lr * (step + 1) / p.warmup_steps
        progress = (step - p.warmup_steps) / max(1, p.steps - p.warmup_steps)
        return p.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def micro_step(self, records: Sequence[Record]) -> float:
        p = self.params
        examples = self._examples(records, self.rng)
        emb = self._embed(examples)
        key_to_id = self.bank.key_to_id
        positives = [{key_to_id[_norm(t)] for t in e.terms} for e in examples]
        mined = self.bank.mine(emb, positives, p.hard_negatives)
        columns = list(
            dict.fromkeys(
                [i for pos in positives for i in sorted(pos)] + [i for m in mined for i in m]
            )
        )
        if not columns:
            return 0.0
        col_of = {c: j for j, c in enumerate(columns)}
        pos_mask = torch.zeros(
            len(examples), len(columns), dtype=torch.bool, device=self.models.device
        )
        for b, pos in enumerate(positives):
            for i in pos:
                pos_mask[b, col_of[i]] = True
        ids, mask = tokenize(
            self.models.tokenizer,
            [self.bank.terms[c] for c in columns],
            self.models.config.max_term_tokens,
            self.models.device,
        )
        with self._autocast():
            term_vecs = self.models.text(ids, mask)
        scores = emb.scores(term_vecs)
        scale = torch.as_tensor(self.models.speech.logit_scale).exp()
        loss = multi_positive_infonce(scores, pos_mask, scale)
        (loss / p.accum).backward()
        return float(loss.detach())

    def fit(self) -> TrainResult:
        p = self.params
        self.models.train()
        self.bank.refresh(self.models)
        order: list[int] = []
        best: dict[int, float] = {}
        recall: dict[int, float] = {}
        loss_avg = 0.0
        started = time.monotonic()
        while self.step < p.steps:
            if self.step and self.step % p.refresh_every == 0:
                self.bank.refresh(self.models)
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr_at(self.step)
            self.optimizer.zero_grad(set_to_none=True)
            losses = []
            for _ in range(p.accum):
                if len(order) < p.batch_size:
                    fresh = list(range(len(self.train_records)))
                    random.shuffle(fresh)
                    order += fresh
                batch, order = order[: p.batch_size], order[p.batch_size :]
                losses.append(self.micro_step([self.train_records[i] for i in batch]))
            if p.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.params_to_train, p.grad_clip)
            self.optimizer.step()
            self.step += 1
            loss = float(np.mean(losses))
            loss_avg = loss if self.step == 1 else 0.9 * loss_avg + 0.1 * loss
            if self.step % p.log_every == 0 or self.step == p.steps:
                self._log(
                    {
                        "step": self.step,
                        "loss": loss_avg,
                        "lr": self._lr_at(self.step),
                        "seconds": time.monotonic() - started,
                    }
                )
            if self.dev_records and (self.step % p.eval_every == 0 or self.step == p.steps):
                recall = self.evaluate()
                self._log({"step": self.step, **{f"recall@{k}": v for k, v in recall.items()}})
                if not best or recall[min(recall)] > best[min(best)]:
                    best = recall
                    self.save(p.out / "best", recall)
                self.models.train()
            if self.step % p.save_every == 0 or self.step == p.steps:
                self.save(p.out / "latest", recall)
        if p.export_released is not None:
            checkpoint.save_released(p.export_released, self.models, {"step": self.step})
        return TrainResult(self.step, loss_avg, recall, best, self.history)

    def save(self, directory: Path, recall: dict[int, float]) -> None:
        checkpoint.save_adapters(
            directory,
            self.models,
            {"step": self.step, "recall": {str(k): v for k, v in recall.items()}},
        )
        torch.save(
            {"optimizer": self.optimizer.state_dict(), "step": self.step},
            directory / "trainer_state.pt",
        )

    def _log(self, entry: dict[str, float]) -> None:
        self.history.append(entry)
        log.info("%s", " ".join(f"{k}={v:.4g}" for k, v in entry.items()))
        if self._on_log is not None:
            self._on_log(entry)

    # -- evaluation ------------------------------------------------------------

    def evaluate(self, records: Sequence[Record] | None = None) -> dict[int, float]:
        """Recall@K of each (crop, term) pair against the whole term bank (exact scoring)."""
        records = list(records if records is not None else self.dev_records)
        return recall_at_k(
            self.models, self.bank, [self._audio(r.audio) for r in records], records, self.params
        )


def recall_at_k(
    models: RetrieverModels,
    bank: TermBank,
    audios: Sequence[np.ndarray],
    records: Sequence[Record],
    params: TrainParams,
) -> dict[int, float]:
    models.eval()
    rng = np.random.default_rng(12345)  # the same crops at every evaluation
    frontend = LogMelFrontend("cpu")
    term_vecs = encode_terms(
        models.text, models.tokenizer, bank.terms, models.config.max_term_tokens, 256, models.device
    ).to(models.device)
    hits = dict.fromkeys(params.recall_at, 0)
    total = 0
    with torch.inference_mode():
        for start in range(0, len(records), params.batch_size):
            chunk = records[start : start + params.batch_size]
            examples = [
                crop(r, a, params.crop_seconds, rng)
                for r, a in zip(chunk, audios[start : start + params.batch_size], strict=True)
            ]
            mels = frontend([e.audio for e in examples])
            features, lens = flatten_features(mels)
            emb = models.speech(features.to(models.device, models.dtype), lens.to(models.device))
            scores = emb.scores(term_vecs)
            k_max = min(max(params.recall_at), scores.shape[1])
            top = scores.topk(k_max, dim=1).indices.cpu().numpy()
            for b, e in enumerate(examples):
                for t in e.terms:
                    tid = bank.key_to_id[_norm(t)]
                    total += 1
                    ranked = list(top[b])
                    for k in params.recall_at:
                        hits[k] += int(tid in ranked[:k])
    return {k: (hits[k] / total if total else 0.0) for k in params.recall_at}


def train(params: TrainParams, build: dict[str, Any] | None = None) -> TrainResult:
    return Trainer(params, build).fit()


def model_config(
    pooling: str,
    preset_name: str,
    audio_model: str,
    text_model: str,
    init_checkpoint: str | None,
    device: str | None,
) -> NeuralRetrieverConfig:
    preset(preset_name)  # fail fast on an unknown preset
    return NeuralRetrieverConfig(
        audio_model=audio_model,
        text_model=text_model,
        pooling=pooling,  # type: ignore[arg-type]
        lora_preset=preset_name,
        checkpoint=init_checkpoint,
        device=device,
    )
