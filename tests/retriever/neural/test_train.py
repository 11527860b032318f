"""Training: the loss's masking, and a short run on a toy set reaching recall@1 = 1.0."""

from __future__ import annotations

from tests.retriever.neural.support import require_neural_stack

require_neural_stack()

import json  # noqa: E402
import math  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from retriever.neural.config import NeuralRetrieverConfig  # noqa: E402
from retriever.neural.data import Record, TermSpan, crop, read_jsonl, write_wav  # noqa: E402
from retriever.neural.models import build_models  # noqa: E402
from retriever.neural.train import Trainer, TrainParams, multi_positive_infonce  # noqa: E402
from tests.retriever.neural.support import tiny_build_kwargs, tiny_config, tone  # noqa: E402

TERMS = ["contrastive learning", "bleu score", "speech model", "term data"]
DISTRACTORS = ["neural network", "the model", "data set", "learning rate"]
FREQS = [300, 700, 1500, 3000]


def test_infonce_masks_the_rows_other_positives() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.3, 0.9]])
    positives = torch.tensor([[True, True, False], [False, False, True]])
    got = multi_positive_infonce(scores, positives, 1.0)
    # Row 0: each positive against the only negative (column 2), not against the other positive.
    want = [
        -math.log(math.exp(0.9) / (math.exp(0.9) + math.exp(0.1))),
        -math.log(math.exp(0.8) / (math.exp(0.8) + math.exp(0.1))),
        -math.log(math.exp(0.9) / (math.exp(0.9) + math.exp(0.2) + math.exp(0.3))),
    ]
    assert got.item() == pytest.approx(sum(want) / 3, rel=1e-6)
    # A row without positives adds nothing; no positives at all is a zero loss.
    assert multi_positive_infonce(scores, torch.zeros_like(positives), 1.0).item() == 0.0


def test_crop_keeps_the_timed_term_inside() -> None:
    audio = np.zeros(16000 * 6, dtype=np.float32)
    record = Record(Path("x.wav"), (TermSpan("a", 4.0, 4.6), TermSpan("b", 0.2, 0.5)), 0.0, 6.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        ex = crop(record, audio, 1.92, rng)
        assert len(ex.audio) == int(1.92 * 16000)
        assert ex.terms in (("a",), ("b",))


def _write_set(root: Path, name: str, n: int, seed: int) -> Path:
    lines = []
    for i in range(n):
        k = i % len(TERMS)
        path = root / f"{name}{i}.wav"
        write_wav(path, tone(FREQS[k], 1.0, seed=seed + i))
        lines.append({"audio": path.name, "terms": [{"text": TERMS[k], "start": 0.1, "end": 0.9}]})
    (root / f"{name}.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root / f"{name}.jsonl"


@pytest.mark.slow  # 2–20 s each on the 2-core machines, depending on load
@pytest.mark.parametrize("pooling", ["maxsim", "attention"])
def test_short_run_on_a_toy_set_reaches_recall_at_1(tmp_path: Path, pooling: str) -> None:
    train = _write_set(tmp_path, "train", 16, 0)
    dev = _write_set(tmp_path, "dev", 8, 100)
    (tmp_path / "bank.txt").write_text("\n".join(DISTRACTORS) + "\n")
    assert len(read_jsonl(train)) == 16
    params = TrainParams(
        train=train,
        dev=dev,
        bank=tmp_path / "bank.txt",
        out=tmp_path / "run",
        model=tiny_config(pooling=pooling),
        steps=40,
        batch_size=8,
        accum=2,
        lr=3e-3,
        warmup_steps=0,
        hard_negatives=2,
        refresh_every=10,
        eval_every=20,
        save_every=20,
        recall_at=(1, 5),
    )
    kwargs = tiny_build_kwargs(TERMS + DISTRACTORS)
    torch.manual_seed(0)
    trainer = Trainer(params, kwargs)
    result = trainer.fit()
    assert result.recall[1] == 1.0
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert losses[-1] < losses[0]
    # The saved adapters reproduce the trained model's recall.
    config = NeuralRetrieverConfig.from_adapters(tmp_path / "run" / "latest", device="cpu")
    torch.manual_seed(0)
    reloaded = build_models(config, **kwargs)
    trainer.models = reloaded
    assert trainer.evaluate()[1] == 1.0
