"""Benchmark: time to first token and prefix-cache hit ratio, block vs step history trimming.

Streams consecutive chunks of the test speech through the real translator
(``server.translator``) for each trim policy and reports, per policy, the time
to first token of each chunk and the share of prompt tokens vLLM served from
its prefix cache (``usage.prompt_tokens_details.cached_tokens``).

Against the tiny random Qwen3-Omni on this machine's CPU (started here, needs
``tests/support/vllm_env.sh`` to have run)::

    .venv/bin/python bench/translator_cache.py --chunks 60

Against any running vLLM (e.g. a GPU serving Qwen3-Omni)::

    .venv/bin/python bench/translator_cache.py --url http://gpu-host:8000 --model NAME

Each policy runs as its own tenant (its own ``cache_salt``), so the runs never
share cache entries.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from kernel.frames import TranslationCommit  # noqa: E402
from server.translator import (  # noqa: E402
    HistoryParams,
    TranslatorParams,
    TrimPolicy,
    VllmTranslatorService,
)
from tests.translator.fakes import hits  # noqa: E402
from tests.translator.realvllm import chunks, session_context  # noqa: E402

TERMS = (("contrastive learning", {"zh": "对比学习", "de": "kontrastives Lernen"}, 0.9),)


@dataclass(frozen=True)
class ChunkStat:
    policy: str
    index: int
    history: int
    prompt_tokens: int
    cached_tokens: int
    ttft: float


async def run_policy(
    url: str, model: str | None, policy: TrimPolicy, args: argparse.Namespace
) -> list[ChunkStat]:
    history = HistoryParams(policy=policy, max_chunks=args.max_chunks, block=args.block)
    service = VllmTranslatorService(TranslatorParams(url=url, model=model, history=history))
    context = session_context(args.lang, lm=args.lm, tenant=f"bench-{uuid.uuid4().hex}")
    session = await service.open_session(context, lambda warning: print(warning, file=sys.stderr))
    stats: list[ChunkStat] = []
    try:
        for chunk in chunks(args.chunks, lm=args.lm):
            commit = None
            async for event in session.translate(chunk, hits(chunk.index, *TERMS)):
                if isinstance(event, TranslationCommit):
                    commit = event
            assert commit is not None and "error" not in commit.extra, commit
            stats.append(
                ChunkStat(
                    policy=policy.value,
                    index=chunk.index,
                    history=int(commit.extra["history_chunks"]),  # type: ignore[call-overload]
                    prompt_tokens=int(commit.extra["prompt_tokens"]),  # type: ignore[call-overload]
                    cached_tokens=int(commit.extra["cached_tokens"] or 0),  # type: ignore[call-overload]
                    ttft=float(commit.time_to_first_token or 0.0),
                )
            )
    finally:
        await session.aclose()
        await service.aclose()
    return stats


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]:.0f}"


def summary(stats: list[ChunkStat], full_from: int) -> str:
    steady = [s for s in stats if s.index >= full_from]
    ttft = [s.ttft for s in stats]
    ttft_steady = [s.ttft for s in steady]
    ratio = sum(s.cached_tokens for s in stats) / max(1, sum(s.prompt_tokens for s in stats))
    ratio_steady = sum(s.cached_tokens for s in steady) / max(
        1, sum(s.prompt_tokens for s in steady)
    )
    return (
        f"| {stats[0].policy} | {len(stats)} | {statistics.mean(s.prompt_tokens for s in stats):.0f} "
        f"| {_ms(ttft, 0.5)} | {_ms(ttft, 0.9)} | {_ms(ttft_steady, 0.5)} "
        f"| {_ms(ttft_steady, 0.9)} | {ratio:.1%} | {ratio_steady:.1%} |"
    )


async def measure(args: argparse.Namespace) -> dict[TrimPolicy, list[ChunkStat]]:
    server = None
    url, model = args.url, args.model
    if url is None:
        from tests.support.vllm_server import launch

        # Long enough for a full lm-4 history of the random model's max-length answers.
        server = launch(
            Path(tempfile.mkdtemp(prefix="rasst-bench-")),
            extra_args=("--max-model-len", str(args.max_model_len)),
        )
        url, model = server.url, server.name
        print(f"started the tiny CPU vLLM at {url}", file=sys.stderr)
    try:
        results = {
            policy: await run_policy(url, model, policy, args)
            for policy in (TrimPolicy(p) for p in args.policies)
        }
    finally:
        if server is not None:
            server.stop()
    return results


def main(args: argparse.Namespace) -> int:
    results = asyncio.run(measure(args))
    limit = HistoryParams(max_chunks=args.max_chunks).limit(args.lm)
    print(
        f"\n{args.chunks} chunks of {0.96 * args.lm:.2f} s (lm={args.lm}), target {args.lang}, "
        f"history limit {limit}; steady state = chunks >= {limit + 1} (history full)\n"
    )
    print(
        "| policy | chunks | mean prompt tokens | TTFT p50 ms | TTFT p90 ms "
        "| steady TTFT p50 ms | steady TTFT p90 ms | cache hit ratio | steady hit ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for stats in results.values():
        print(summary(stats, limit + 1))
    if args.csv:
        with open(args.csv, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(
                ["policy", "chunk", "history", "prompt_tokens", "cached_tokens", "ttft_s"]
            )
            for stats in results.values():
                for s in stats:
                    writer.writerow(
                        [
                            s.policy,
                            s.index,
                            s.history,
                            s.prompt_tokens,
                            s.cached_tokens,
                            f"{s.ttft:.4f}",
                        ]
                    )
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="running vLLM; default: start the tiny CPU model")
    parser.add_argument("--model", help="served model name (default: the server's first)")
    parser.add_argument("--chunks", type=int, default=60)
    parser.add_argument("--lm", type=int, default=1, choices=[1, 2, 3, 4])
    parser.add_argument("--lang", default="zh")
    parser.add_argument("--max-chunks", type=int, default=None, help="history limit (reference)")
    parser.add_argument("--block", type=int, default=None, help="chunks per block trim")
    parser.add_argument("--policies", nargs="+", default=["block", "step"])
    parser.add_argument("--csv", help="also write per-chunk figures here")
    parser.add_argument("--max-model-len", type=int, default=8192, help="for the started vLLM")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
