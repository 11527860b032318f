"""How many concurrent real-time sessions the embedded gateway sustains on this machine.

Starts ``rasst serve`` (embedded default: VAD + Whisper captions, no LLM) on loopback,
then for each concurrency level streams real speech (``two_cities_16k.wav``, 44 s) from N
clients at real time, with starts spread over one chunk, and reads the events:

* chunk-to-event latency: wall time from a chunk's last sample reaching the server to its
  ``chunk.done`` event (p50 / p95 / max over all chunks of all sessions);
* lag: audio received but not yet processed (max over the run);
* final-caption latency: wall time from the moment the client sent the audio at a final
  caption's end to that caption's arrival (includes the 0.5 s of silence that ends an
  utterance);
* first appearance: for each word of the final captions, wall time from the moment its
  end was sent to the first caption event (revisable or final) of that utterance holding
  at least that many words;
* the final captions' word error rate against the reading's text.

A level is *sustained* when p95 latency stays under the chunk duration plus one second and the
lag never exceeds two chunks (the server keeps up instead of drifting behind).

    python bench/gateway_concurrency.py --levels 1 4 8 12 16 --lm 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.asr.wer import wer  # noqa: E402
from server.client import read_wav  # noqa: E402
from tests.support.live_server import TWO_CITIES, start_server  # noqa: E402

FRAME_SECONDS = 0.1
REFERENCE = TWO_CITIES.with_suffix(".txt").read_text()


async def one_session(url: str, pcm: np.ndarray, lm: int, delay: float) -> list[dict]:
    """The session's events, each with ``_at``: arrival, seconds after the first audio."""
    await asyncio.sleep(delay)
    events: list[dict] = []
    started = time.monotonic()
    frame = int(16000 * FRAME_SECONDS)
    async with connect(url, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "session.start", "lm": lm}))
        json.loads(await ws.recv())

        async def reader() -> None:
            async for message in ws:
                event = json.loads(message)
                event["_at"] = time.monotonic() - started
                events.append(event)

        read_task = asyncio.create_task(reader())
        started = time.monotonic()
        for sent, offset in enumerate(range(0, len(pcm), frame)):
            await ws.send(pcm[offset : offset + frame].tobytes())
            pause = started + (sent + 1) * FRAME_SECONDS - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
        await ws.send(json.dumps({"type": "session.end"}))
        await asyncio.wait_for(read_task, timeout=600)
    return events


async def run_level(url: str, pcm: np.ndarray, sessions: int, lm: int) -> dict:
    chunk = 0.96 * lm
    rng = random.Random(sessions)
    results = await asyncio.gather(
        *(one_session(url, pcm, lm, rng.uniform(0, chunk)) for _ in range(sessions))
    )
    done = [e for events in results for e in events if e["type"] == "chunk.done"]
    final_lat: list[float] = []
    first_seen: list[float] = []
    wers: list[float] = []
    for events in results:
        captions = [e for e in events if e["type"] == "caption"]
        finals = [c for c in captions if c["final"]]
        final_lat += [c["_at"] - c["end"] for c in finals if c["text"]]
        wers.append(wer(REFERENCE, " ".join(c["text"] for c in finals)))
        for final in finals:
            same = [c for c in captions if c["utterance"] == final["utterance"]]
            for n, word in enumerate(final["words"], 1):
                seen = next((c["_at"] for c in same if len(c["words"]) >= n), final["_at"])
                first_seen.append(seen - word["end"])
    errors = [e for events in results for e in events if e["type"] == "error"]
    latencies = np.array([e["latency_ms"] for e in done])
    max_lag = max(e["lag_seconds"] for e in done)
    p95 = float(np.percentile(latencies, 95))
    return {
        "sessions": sessions,
        "chunks": len(done),
        "errors": len(errors),
        "latency_p50_ms": round(float(np.percentile(latencies, 50))),
        "latency_p95_ms": round(p95),
        "latency_max_ms": round(float(latencies.max())),
        "max_lag_s": round(max_lag, 2),
        "final_caption_p50_ms": round(1000 * float(np.percentile(final_lat, 50))),
        "final_caption_p95_ms": round(1000 * float(np.percentile(final_lat, 95))),
        "first_appearance_p50_ms": round(1000 * float(np.percentile(first_seen, 50))),
        "first_appearance_p95_ms": round(1000 * float(np.percentile(first_seen, 95))),
        "wer_mean": round(float(np.mean(wers)), 3),
        "wer_max": round(float(np.max(wers)), 3),
        "sustained": bool(not errors and p95 <= (chunk + 1.0) * 1000 and max_lag <= 2 * chunk),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8, 12, 16])
    parser.add_argument("--lm", type=int, default=2)
    parser.add_argument(
        "--seconds", type=float, default=0, help="audio per session (0 = whole file)"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--model", default="tiny.en", help="RASST_ASR_MODEL")
    args = parser.parse_args()

    _, pcm = read_wav(TWO_CITIES)
    if args.seconds:
        pcm = pcm[: int(16000 * args.seconds)]
    with tempfile.TemporaryDirectory() as tmp:
        env = {"RASST_MAX_SESSIONS": "256", "RASST_ASR_MODEL": args.model}
        server = start_server(Path(tmp), env=env, ready_timeout=120)
        try:
            # One warm-up session so worker start-up does not count.
            await one_session(server.ws_url, pcm[: 16000 * 2], args.lm, 0)
            rows = []
            for level in args.levels:
                row = await run_level(server.ws_url, pcm, level, args.lm)
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            server.stop()
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "lm": args.lm,
        "model": args.model,
        "audio_seconds_per_session": round(len(pcm) / 16000, 2),
        "rows": rows,
        "max_sustained_sessions": max((r["sessions"] for r in rows if r["sustained"]), default=0),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
