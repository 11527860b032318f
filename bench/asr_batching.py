"""Does batching the Whisper encoder calls of several sessions pay on this machine?

Encodes the same 7 s window (the encoder input of a short utterance) N times one by one and
once as a batch of N, interleaved, on one thread (a speech worker's setting), and prints the
medians. On the 2-core CPU machine a batch is not cheaper than its items one by one, so
the speech workers do not batch across sessions on the CPU (docs/speech.md).

    python bench/asr_batching.py --batch 4 --repeats 8 [--model base] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.asr.models import AsrModelParams, load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import ctranslate2

    model = load_model(AsrModelParams(model=args.model, device=args.device))
    n_mels = model.feature_extractor.mel_filters.shape[0]
    window = np.random.default_rng(0).normal(0, 0.1, (n_mels, 700)).astype(np.float32)

    def encode(batch: int) -> float:
        features = np.ascontiguousarray(np.stack([window] * batch))
        started = time.perf_counter()
        model.model.encode(ctranslate2.StorageView.from_array(features))
        return time.perf_counter() - started

    encode(1)  # warm-up
    one_by_one, batched = [], []
    for _ in range(args.repeats):
        one_by_one.append(sum(encode(1) for _ in range(args.batch)))
        batched.append(encode(args.batch))
    a, b = float(np.median(one_by_one)), float(np.median(batched))
    print(f"{args.batch} windows one by one: {a * 1000:.0f} ms; as one batch: {b * 1000:.0f} ms")
    print(f"batching {'pays' if b < 0.9 * a else 'does not pay'} here ({b / a:.2f}x)")


if __name__ == "__main__":
    main()
