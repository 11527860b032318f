"""Latency of the neural retriever with real-dimension random weights (no download).

    .venv/bin/python bench/neural_retriever.py [--device cpu|cuda] [--batches 1,4,16] [--json out.json]

Builds the Qwen3-Omni audio encoder at its real size (d_model 1280, 32 layers,
output 2048: 648 M parameters) and BGE-M3's XLM-RoBERTa-large (568 M) from
configs with random weights, applies the release's LoRA (r = 128), and times:

* one batched encode of B 1.92 s windows (features + encoder + projection +
  pooling), per batch and per window, for both poolings;
* term encoding (batch of 64 terms), per term;
* on a GPU, additionally the retrieval overhead ratio (retrieval time / chunk
  duration) for 1, 16 and 64 concurrent sessions at lm = 1 (0.96 s chunks: each
  session's chunk carries 2 new windows), windows of all sessions batched.

Random weights time the same as trained ones: the work does not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _tokenizer(words: list[str]):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>"])}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def _timeit(fn, reps: int) -> list[float]:  # type: ignore[no-untyped-def]
    fn()  # warm-up (allocator, kernels)
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _bench_pooling(pooling, args, audio_cfg, text_cfg, words, terms, waves, results, rows):  # type: ignore[no-untyped-def]
    import torch

    from retriever.neural.config import NeuralRetrieverConfig
    from retriever.neural.encoder import NeuralSpeechEncoder
    from retriever.neural.models import build_models
    from retriever.neural.text import encode_terms

    t0 = time.perf_counter()
    models = build_models(
        NeuralRetrieverConfig(pooling=pooling, device=args.device),  # type: ignore[arg-type]
        audio_config=audio_cfg,
        text_config=text_cfg,
        tokenizer=_tokenizer(words),
    )
    build_s = time.perf_counter() - t0
    n_audio = sum(p.numel() for p in models.speech.parameters())
    n_text = sum(p.numel() for p in models.text.parameters())
    results.setdefault("device", str(models.device))
    results.setdefault("dtype", str(models.dtype))
    results.setdefault("params_speech_M", round(n_audio / 1e6, 1))
    results.setdefault("params_text_M", round(n_text / 1e6, 1))
    results.setdefault("build_seconds", round(build_s, 1))
    enc = NeuralSpeechEncoder(models)
    sync = torch.cuda.synchronize if models.device.type == "cuda" else (lambda: None)
    batches = (
        [int(b) for b in args.batches.split(",")]
        if pooling == "maxsim"
        else [1, max(int(b) for b in args.batches.split(","))]
    )
    for b in batches:
        feats = _timeit(lambda b=b: enc.frontend(waves[:b]), args.reps)
        mels = enc.frontend(waves[:b])

        def run(mels=mels) -> None:  # type: ignore[no-untyped-def]
            enc.forward_windows(mels)
            sync()

        fwd = _timeit(run, args.reps)
        med_f, med = statistics.median(feats), statistics.median(fwd)
        rows.append(
            {
                "pooling": pooling,
                "batch": b,
                "features_ms": round(med_f * 1e3, 1),
                "encode_ms_per_batch": round(med * 1e3, 1),
                "total_ms_per_window": round((med + med_f) / b * 1e3, 1),
            }
        )
        print(rows[-1], flush=True)
    if pooling == "maxsim":

        def terms_run() -> None:
            encode_terms(models.text, models.tokenizer, terms, 64, 64, models.device)
            sync()

        t = statistics.median(_timeit(terms_run, args.reps))
        results["term_ms_per_term"] = round(t / len(terms) * 1e3, 2)
        print({"term_ms_per_term": results["term_ms_per_term"]}, flush=True)
        if models.device.type == "cuda":
            overhead = []
            for n in (int(s) for s in args.sessions.split(",")):
                mels_n = enc.frontend([waves[i % len(waves)] for i in range(2 * n)])
                t = statistics.median(
                    _timeit(lambda m=mels_n: (enc.forward_windows(m), sync()), args.reps)
                )
                overhead.append(
                    {
                        "sessions": n,
                        "windows": 2 * n,
                        "seconds": round(t, 4),
                        "overhead_ratio_lm1": round(t / 0.96, 4),
                    }
                )
                print(overhead[-1], flush=True)
            results["overhead"] = overhead
    enc.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default=None)
    ap.add_argument("--batches", default="1,4,16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--terms", type=int, default=64)
    ap.add_argument("--sessions", default="1,16,64")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch
    from transformers import Qwen3OmniMoeAudioEncoderConfig, XLMRobertaConfig

    words = [
        "contrastive",
        "learning",
        "bleu",
        "score",
        "neural",
        "machine",
        "translation",
        "speech",
        "recognition",
        "transformer",
        "attention",
    ]
    terms = [
        " ".join(words[(i + j) % len(words)] for j in range(1 + i % 3)) for i in range(args.terms)
    ]
    audio_cfg = Qwen3OmniMoeAudioEncoderConfig(output_dim=2048)  # the real sizes are the defaults
    text_cfg = XLMRobertaConfig(
        vocab_size=250002,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        max_position_embeddings=8194,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
    )
    # Random weights at the configs' init scale drive activations into float
    # denormals deep in the 32 layers, which are 10-100x slower on x86; trained
    # weights do not. Flushing them keeps the timing representative.
    torch.set_flush_denormal(True)
    results: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": os.getloadavg(),
    }
    rng = np.random.default_rng(0)
    waves = [
        rng.standard_normal(30720).astype(np.float32) * 0.1
        for _ in range(max(int(b) for b in args.batches.split(",")))
    ]
    rows: list[dict[str, object]] = []
    for pooling in ("maxsim", "attention"):
        _bench_pooling(pooling, args, audio_cfg, text_cfg, words, terms, waves, results, rows)
    results["rows"] = rows
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "rows"}))


if __name__ == "__main__":
    main()
