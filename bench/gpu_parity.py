"""Issue 17 parity benchmark: neural retrieval latency and overhead, before/after encode-once, TTFT.

One command on a GPU host (weights are random at the real dimensions, so nothing
is downloaded; the work does not depend on the values):

    .venv/bin/python bench/gpu_parity.py --json gpu_parity.json
    .venv/bin/python bench/gpu_parity.py --vllm-url http://127.0.0.1:8001/v1 --json out.json

and the CPU fallback (one session, a few chunks: the real-dimension CPU latency
before/after encode-once, as recorded in docs/benchmarks.md):

    .venv/bin/python bench/gpu_parity.py --cpu --sessions 1 --chunks 4 --json cpu.json

What it measures, per retrieval mode:

* ``windows`` (before): each 0.96 s chunk (lm = 1) schedules the 1.92 s windows
  that end in it (two at lm = 1) and encodes each independently;
* ``span`` (after, the default): each chunk encodes ``[start − 1.92 s, end]``
  once (2.88 s at lm = 1) and scores its MaxSim sub-windows.

For each of ``--sessions`` (1, 16, 64 by default) concurrent sessions, every
session runs the full per-chunk path (``ChunkRetriever.process``: features,
the cross-session ``MicroBatcher``, FAISS over a ``--terms``-term glossary,
aggregation) for ``--chunks`` chunks after ``--warmup`` chunks; chunks of all
sessions arrive together, as in real time. Reported: the median and p95
per-chunk latency, and the overhead ratio = median latency / chunk duration
(the paper's: 37–44 ms median per call, 3.9 % of a 0.96 s chunk).

TTFT: with ``--vllm-url`` (an OpenAI-compatible vLLM serving a RASST model),
or ``--vllm-serve MODEL_DIR`` (the script starts ``vllm serve`` on it with the
settings of docs/translator.md and stops it afterwards), ``--ttft-chunks`` chunks
of one session go through the translator with the paper preset's parameters;
reported are the median and p95 time to first token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHUNK = 15_360  # lm = 1: 0.96 s at 16 kHz
WORDS = [
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
    "encoder",
    "decoder",
    "corpus",
    "glossary",
    "terminology",
    "latency",
    "simultaneous",
    "interpreter",
]


def _tokenizer(words: list[str]) -> Any:
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


def _build_models(device: str, sparse_dir: Path, tiny: bool = False) -> Any:
    import torch
    from transformers import Qwen3OmniMoeAudioEncoderConfig, XLMRobertaConfig

    from retriever.neural.config import NeuralRetrieverConfig
    from retriever.neural.models import build_models

    if tiny:  # the script's own smoke test: same code path, toy sizes
        audio_cfg = Qwen3OmniMoeAudioEncoderConfig(
            d_model=32,
            encoder_layers=2,
            encoder_attention_heads=4,
            encoder_ffn_dim=64,
            output_dim=48,
            downsample_hidden_size=16,
        )
        text_cfg = XLMRobertaConfig(
            vocab_size=len(WORDS) + 4,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=80,
            type_vocab_size=1,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
        )
    else:
        audio_cfg = Qwen3OmniMoeAudioEncoderConfig(output_dim=2048)  # real sizes: the defaults
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
    width = int(text_cfg.hidden_size)
    # BGE-M3's sparse head (the release serves terms dense+sparse 0.3/0.7).
    torch.save(torch.nn.Linear(width, 1).state_dict(), sparse_dir / "sparse_linear.pt")
    config = NeuralRetrieverConfig(
        pooling="maxsim",
        device=device,
        sparse_weight=0.7,
        text_model=str(sparse_dir),
        target_dim=width,
        lora_preset="paper" if tiny else "release",
    )
    return build_models(
        config, audio_config=audio_cfg, text_config=text_cfg, tokenizer=_tokenizer(WORDS)
    )


def _speech(seconds: float, seed: int) -> np.ndarray:
    """Speech-like noise (random weights see no difference; the length is what costs)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(seconds * 16_000)) * 3000).astype(np.int16)


def _run_sessions(
    models: Any, windowing: str, sessions: int, chunks: int, warmup: int, manager: Any
) -> dict[str, Any]:
    import torch

    from retriever.chunk_retriever import ChunkRetriever
    from retriever.neural.config import BatchingParams, NeuralServingParams
    from retriever.neural.encoder import NeuralSpeechEncoder

    params = NeuralServingParams(
        model=models.config,
        batching=BatchingParams(0.005, max(64, 2 * sessions)),
        windowing=windowing,  # type: ignore[arg-type]
    )
    encoder = NeuralSpeechEncoder(models, params)
    sync = torch.cuda.synchronize if models.device.type == "cuda" else (lambda: None)
    barrier = threading.Barrier(sessions)
    latencies: list[list[float]] = [[] for _ in range(sessions)]
    audio = [_speech((warmup + chunks) * 0.96, seed=s) for s in range(sessions)]

    def session(s: int) -> None:
        retriever = ChunkRetriever(encoder.open_stream(), manager, ["bench"], ["de"])
        for i in range(warmup + chunks):
            pcm = audio[s][i * CHUNK : (i + 1) * CHUNK]
            barrier.wait()  # every session's chunk arrives at once
            started = time.perf_counter()
            retriever.process(i, i * CHUNK, pcm)
            sync()
            if i >= warmup:
                latencies[s].append(time.perf_counter() - started)

    before = encoder.stats.batches, encoder.stats.items
    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(session, range(sessions)))
    passes = encoder.stats.batches - before[0]
    inputs = encoder.stats.items - before[1]
    encoder.close()
    flat = sorted(x for row in latencies for x in row)
    median = statistics.median(flat)
    p95 = flat[min(len(flat) - 1, round(0.95 * (len(flat) - 1)))]
    row = {
        "windowing": windowing,
        "sessions": sessions,
        "chunks_measured": len(flat),
        "median_ms": round(median * 1e3, 1),
        "p95_ms": round(p95 * 1e3, 1),
        "overhead_ratio_lm1": round(median / 0.96, 4),
        "forward_passes": passes,
        "encoder_inputs": inputs,
        "inputs_per_pass": round(inputs / max(1, passes), 2),
    }
    print(json.dumps(row), flush=True)
    return row


async def _ttft(url: str, model: str | None, chunks: int) -> dict[str, Any]:
    from kernel.frames import AudioChunk, TermHits
    from server.stages import SessionContext
    from server.translator import (
        DecodingParams,
        HistoryParams,
        PromptStyle,
        TranslatorParams,
        TrimPolicy,
        VllmTranslatorService,
    )
    from server.translator.params import FaultParams

    params = TranslatorParams(
        url=url,
        model=model,
        decoding=DecodingParams(seed=998_244_353),
        history=HistoryParams(policy=TrimPolicy.STEP, count_current=True),
        prompt_style=PromptStyle.RELEASE,
        min_audio_samples=CHUNK,
        faults=FaultParams(request_deadline=60.0, read_timeout=60.0),
    )
    service = VllmTranslatorService(params)
    context = SessionContext(
        session_id="bench",
        tenant="bench",
        source_language="en",
        target_languages=("zh",),
        lm=1,
        chunk_seconds=0.96,
    )
    session = await service.open_session(context, lambda _w: None)
    ttfts: list[float] = []
    audio = _speech(chunks * 0.96, seed=99)
    try:
        for i in range(chunks):
            chunk = AudioChunk(i, i * CHUNK, audio[i * CHUNK : (i + 1) * CHUNK], received_at=0.0)
            async for event in session.translate(chunk, TermHits(chunk_index=i)):
                ttft = getattr(event, "time_to_first_token", None)
                if ttft is not None:
                    ttfts.append(ttft)
    finally:
        await service.aclose()
    if not ttfts:
        return {"ttft": "no tokens came back"}
    ttfts.sort()
    return {
        "ttft_chunks": len(ttfts),
        "ttft_median_ms": round(statistics.median(ttfts) * 1e3, 1),
        "ttft_p95_ms": round(ttfts[min(len(ttfts) - 1, round(0.95 * (len(ttfts) - 1)))] * 1e3, 1),
    }


@contextlib.contextmanager
def _vllm(model_dir: str, python: str, extra: str, timeout: float) -> Any:
    """``vllm serve`` on a free port (own process group, stopped on exit); yields its URL."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_dir, "--served-model-name", "rasst",
        "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", "16384", "--enable-prefix-caching", "--enable-prompt-tokens-details",
        "--limit-mm-per-prompt", '{"audio": 32, "image": 0, "video": 0}',
        *shlex.split(extra),
    ]  # fmt: skip
    log = Path(tempfile.gettempdir()) / f"gpu_parity_vllm_{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {process.returncode}; log: {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"vLLM not healthy after {timeout:.0f} s; log: {log}")
            time.sleep(1.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cpu", action="store_true", help="CPU fallback (no GPU needed)")
    ap.add_argument("--sessions", default="1,16,64")
    ap.add_argument("--chunks", type=int, default=20, help="chunks measured per session")
    ap.add_argument(
        "--warmup", type=int, default=3, help="chunks before measuring (≥ 2: full look-back)"
    )
    ap.add_argument("--terms", type=int, default=238, help="glossary size (the paper's: 238)")
    ap.add_argument("--modes", default="windows,span")
    ap.add_argument("--vllm-url", default=None, help="OpenAI-compatible vLLM for TTFT")
    ap.add_argument("--vllm-model", default=None)
    ap.add_argument("--vllm-serve", default=None, metavar="MODEL_DIR", help="start vLLM on it")
    ap.add_argument("--vllm-python", default=sys.executable, help="python of the vLLM install")
    ap.add_argument("--vllm-args", default="", help="extra vllm serve arguments")
    ap.add_argument("--vllm-start-timeout", type=float, default=1800.0)
    ap.add_argument("--ttft-chunks", type=int, default=30)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke test only
    args = ap.parse_args()

    import torch

    from glossary.model import GlossaryEntry, GlossarySnapshot
    from retriever.index import IndexManager, IndexParams
    from retriever.neural.encoder import NeuralTermEncoder

    if args.cpu:
        device = "cpu"
        # Random weights at init scale reach float denormals in 32 layers (10-100x
        # slower on x86); trained weights do not. Flushing keeps timings representative.
        torch.set_flush_denormal(True)
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        ap.error("no CUDA device: run on a GPU host, or pass --cpu for the CPU fallback")
    results: dict[str, Any] = {
        "tiny_smoke_test": args.tiny,
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        models = _build_models(device, Path(tmp), tiny=args.tiny)
        results["build_seconds"] = round(time.perf_counter() - t0, 1)
    results["dtype"] = str(models.dtype)
    terms = [
        " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(1 + i % 3)) + f" {i}"
        for i in range(args.terms)
    ]
    snapshot = GlossarySnapshot(
        "bench",
        1,
        "bench",
        "bench",
        "en",
        tuple(GlossaryEntry(t, {"de": (t.upper(),)}) for t in terms),
    )
    manager = IndexManager(NeuralTermEncoder(models), IndexParams())
    t0 = time.perf_counter()
    manager.update(snapshot).result(timeout=3600)
    results["index_build_seconds"] = round(time.perf_counter() - t0, 2)
    rows = []
    try:
        for n in (int(s) for s in args.sessions.split(",")):
            for mode in args.modes.split(","):
                rows.append(_run_sessions(models, mode, n, args.chunks, args.warmup, manager))
    finally:
        manager.close()
    results["retrieval"] = rows
    if args.vllm_serve:
        with _vllm(
            args.vllm_serve, args.vllm_python, args.vllm_args, args.vllm_start_timeout
        ) as url:
            results.update(asyncio.run(_ttft(url, "rasst", args.ttft_chunks)))
    elif args.vllm_url:
        results.update(asyncio.run(_ttft(args.vllm_url, args.vllm_model, args.ttft_chunks)))
    results["load_average_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "retrieval"}))


if __name__ == "__main__":
    main()
