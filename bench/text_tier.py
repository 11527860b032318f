"""Benchmark: the latency the text-LLM translator tier adds per chunk.

Two measurements, both against a real OpenAI-compatible server (by default the
tiny random Qwen3 text model on this machine's CPU vLLM, started here; needs
``tests/support/vllm_env.sh`` to have run):

1. **Gateway, end to end.** The real gateway streams the test talk
   (``two_cities_16k.wav``, 44 s) in real time, once captions-only and once with
   ``--llm-mode text`` and a glossary of phrases of the talk. Per chunk, the
   ``chunk.done`` latency (wall time from the chunk's last sample to every stage
   being done with it); the difference between the runs is what translation
   adds; with the term repair on and off. Also: commits with text (the
   policy's segments) and commits that reported ``terms_missed``.
2. **Translator, in process.** Segments of the talk's sentences (8–12 words)
   through :class:`~server.translator.text_service.TextTranslatorService`: time
   to first token and the whole turn, with and without the one-shot term repair.

With ``--parts ... speech`` the gateway also runs the speech tier on the tiny
random Qwen3-Omni (a second CPU vLLM), for comparison on the same machine.

::

    .venv/bin/python bench/text_tier.py                  # tiny CPU model, both parts
    .venv/bin/python bench/text_tier.py --parts gateway speech   # + the speech tier
    .venv/bin/python bench/text_tier.py --url http://host:8080 --model NAME   # any server

The random model's answers are meaningless and always run to ``max_tokens``
(4 per source word): a real model stops at the end of its sentence, so its
turns are shorter than these for the same speed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from kernel.frames import (  # noqa: E402
    AudioChunk,
    ChunkAnalysis,
    RecognizedWord,
    TranslationCommit,
    samples_for,
)
from server.client import RasstStream, StreamOptions, send_paced  # noqa: E402
from server.translator import TranslatorParams  # noqa: E402
from server.translator.params import TextParams  # noqa: E402
from server.translator.text_service import TextTranslatorService  # noqa: E402
from tests.server.test_retrieval_e2e import CSV, RATE, SPEECH, upload  # noqa: E402
from tests.support.live_server import LiveServer, start_server  # noqa: E402
from tests.translator.fakes import hits  # noqa: E402
from tests.translator.realvllm import session_context  # noqa: E402

SENTENCES = (
    "it was the best of times, it was the worst of times,",
    "it was the age of wisdom, it was the age of foolishness,",
    "it was the epoch of belief, it was the epoch of incredulity,",
    "it was the season of light, it was the season of darkness,",
    "it was the spring of hope, it was the winter of despair,",
)
TERMS = (
    ("age of wisdom", {"de": "Zeitalter der Weisheit"}, 0.9),
    ("spring of hope", {"de": "Frühling der Hoffnung"}, 0.9),
)


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _start(work: Path, args: list[str], env: dict[str, str]) -> LiveServer:
    work.mkdir(parents=True, exist_ok=True)
    return start_server(work, *args, env=env, ready_timeout=180)


async def _gateway_run(work: Path, args: list[str], env: dict[str, str], lm: int) -> dict[str, Any]:
    server = await asyncio.to_thread(_start, work, ["--max-pace", "2", *args], env)
    try:
        glossary_id = upload(server, CSV)
        options = StreamOptions(target_languages=["de"], glossary_ids=[glossary_id], lm=lm)
        events: list[dict[str, Any]] = []
        async with RasstStream(server.ws_url, options) as session:
            sender = asyncio.create_task(send_paced(session, SPEECH, RATE, speed=1.0))
            async for event in session.events():
                events.append(event)
            await sender
    finally:
        await asyncio.to_thread(server.stop)
    done = [e for e in events if e["type"] == "chunk.done"]
    commits = [e for e in events if e["type"] == "translation.commit"]
    return {
        "latency_ms": [float(e["latency_ms"]) for e in done],
        "chunks": len(done),
        "turns": sum(1 for e in commits if e["text"]),
        "missed": sum(1 for e in commits if e.get("terms_missed")),
        "warnings": sorted({e["code"] for e in events if e["type"] == "warning"}),
    }


def _llm_args(url: str, model: str | None, mode: str) -> list[str]:
    return ["--llm-url", url, "--llm-mode", mode, *(["--llm-model", model] if model else [])]


async def gateway_part(
    url: str, model: str | None, lm: int, speech: tuple[str, str | None] | None
) -> None:
    work = Path(tempfile.mkdtemp(prefix="rasst-bench-text-"))
    plan: list[tuple[str, list[str], dict[str, str]]] = [
        ("captions only", [], {}),
        ("text tier, repair on", _llm_args(url, model, "text"), {}),
        (
            "text tier, repair off",
            _llm_args(url, model, "text"),
            {"RASST_LLM_TEXT_REPAIR": "false"},
        ),
    ]
    if speech is not None:
        plan.append(("speech tier (tiny Qwen3-Omni)", _llm_args(*speech, "speech"), {}))
    runs = {}
    for i, (name, args, env) in enumerate(plan):
        runs[name] = await _gateway_run(work / str(i), args, env, lm)
    base = runs["captions only"]["latency_ms"]
    print(f"\n### Gateway, real time, lm={lm} ({0.96 * lm:.2f} s chunks), target de\n")
    print(
        "| run | chunks | chunk.done latency p50 / p90 / max ms | added p50 / p90 ms "
        "| commits with text | commits with terms_missed | warnings |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, run in runs.items():
        lat = run["latency_ms"]
        added = (
            "-"
            if name == "captions only"
            else (f"{_q(lat, 0.5) - _q(base, 0.5):.0f} / {_q(lat, 0.9) - _q(base, 0.9):.0f}")
        )
        print(
            f"| {name} | {run['chunks']} | {_q(lat, 0.5):.0f} / {_q(lat, 0.9):.0f} / {max(lat):.0f} "
            f"| {added} | {run['turns']} | {run['missed']} | {', '.join(run['warnings']) or '-'} |"
        )


def _segment(index: int, sentence: str) -> ChunkAnalysis:
    tokens = sentence.split()
    chunk = samples_for(0.96)
    step = chunk // len(tokens)
    words = tuple(
        RecognizedWord(w, index * chunk + i * step, index * chunk + (i + 1) * step - 1)
        for i, w in enumerate(tokens)
    )
    return ChunkAnalysis(index, speech_samples=chunk, words=words)


async def _translator_run(
    url: str, model: str | None, repair: bool, turns: int
) -> list[dict[str, float]]:
    params = TranslatorParams(url=url, model=model, text=TextParams(repair=repair))
    service = TextTranslatorService(params)
    session = await service.open_session(
        session_context("de", tenant=f"bench-{uuid.uuid4().hex}"),
        lambda w: print(w, file=sys.stderr),
    )
    stats = []
    try:
        for index in range(turns):
            sentence = SENTENCES[index % len(SENTENCES)]
            chunk = AudioChunk(
                index, index * samples_for(0.96), np.zeros(1, "<i2"), time.monotonic()
            )
            started = time.perf_counter()
            commit = None
            async for event in session.translate(
                chunk, hits(index, *TERMS), _segment(index, sentence)
            ):
                if isinstance(event, TranslationCommit):
                    commit = event
            elapsed = time.perf_counter() - started
            assert commit is not None and "error" not in commit.extra, commit
            stats.append(
                {
                    "ttft": float(commit.time_to_first_token or 0.0),
                    "turn": elapsed,
                    "repaired": 1.0 if commit.extra.get("repair") else 0.0,
                    "cached": float(commit.extra.get("cached_tokens") or 0)  # type: ignore[arg-type]
                    / max(1.0, float(commit.extra.get("prompt_tokens") or 1)),  # type: ignore[arg-type]
                }
            )
    finally:
        await session.aclose()
        await service.aclose()
    return stats


async def translator_part(url: str, model: str | None, turns: int) -> None:
    print(f"\n### Translator in process: {turns} segments of 8-12 words, target de\n")
    print("| repair | TTFT p50 / p90 ms | turn p50 / p90 ms | turns repaired | prompt cached |")
    print("|---|---|---|---|---|")
    for repair in (False, True):
        stats = await _translator_run(url, model, repair, turns)
        ttft = [s["ttft"] * 1000 for s in stats]
        turn = [s["turn"] * 1000 for s in stats]
        print(
            f"| {'on' if repair else 'off'} | {_q(ttft, 0.5):.0f} / {_q(ttft, 0.9):.0f} "
            f"| {_q(turn, 0.5):.0f} / {_q(turn, 0.9):.0f} "
            f"| {sum(s['repaired'] for s in stats):.0f}/{len(stats)} "
            f"| {statistics.mean(s['cached'] for s in stats):.0%} |"
        )


async def measure(args: argparse.Namespace) -> None:
    server = None
    url, model = args.url, args.model
    if url is None:
        from tests.support.vllm_server import launch

        server = launch(Path(tempfile.mkdtemp(prefix="rasst-bench-vllm-")), text=True)
        url, model = server.url, server.name
        print(f"started the tiny CPU text vLLM at {url}", file=sys.stderr)
    speech_server = None
    try:
        if "translator" in args.parts:
            await translator_part(url, model, args.turns)
        speech = None
        if "speech" in args.parts:
            from tests.support.vllm_server import launch

            speech_server = launch(Path(tempfile.mkdtemp(prefix="rasst-bench-omni-")))
            speech = (speech_server.url, speech_server.name)
        if "gateway" in args.parts:
            await gateway_part(url, model, args.lm, speech)
    finally:
        for started in (server, speech_server):
            if started is not None:
                started.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="running OpenAI-compatible server; default: tiny CPU vLLM")
    parser.add_argument("--model", help="served model name (default: the server's first)")
    parser.add_argument("--lm", type=int, default=2, choices=[1, 2, 3, 4])
    parser.add_argument("--turns", type=int, default=30, help="in-process segments per run")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["translator", "gateway"],
        choices=["translator", "gateway", "speech"],
        help="speech: also run the gateway with the speech tier on the tiny CPU Qwen3-Omni",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(measure(parse_args()))
