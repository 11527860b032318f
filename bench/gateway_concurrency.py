"""How many concurrent real-time sessions the embedded gateway sustains on this machine.

Starts ``rasst serve`` (embedded default: VAD + pocketsphinx captions, no LLM) on loopback,
then for each concurrency level streams real speech (``two_cities_16k.wav``, 44 s) from N
clients at real time, with starts spread over one chunk, and reads the ``chunk.done`` events:

* chunk-to-event latency: wall time from a chunk's last sample reaching the server to its
  ``chunk.done`` event (p50 / p95 / max over all chunks of all sessions);
* lag: audio received but not yet processed (max over the run).

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

from server.client import read_wav  # noqa: E402
from tests.support.live_server import TWO_CITIES, start_server  # noqa: E402

FRAME_SECONDS = 0.1


async def one_session(url: str, pcm: np.ndarray, lm: int, delay: float) -> list[dict]:
    await asyncio.sleep(delay)
    events: list[dict] = []
    frame = int(16000 * FRAME_SECONDS)
    async with connect(url, max_size=2**22) as ws:
        await ws.send(json.dumps({"type": "session.start", "lm": lm}))
        json.loads(await ws.recv())

        async def reader() -> None:
            async for message in ws:
                events.append(json.loads(message))

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
    args = parser.parse_args()

    _, pcm = read_wav(TWO_CITIES)
    if args.seconds:
        pcm = pcm[: int(16000 * args.seconds)]
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), env={"RASST_MAX_SESSIONS": "256"})
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
        "audio_seconds_per_session": round(len(pcm) / 16000, 2),
        "rows": rows,
        "max_sustained_sessions": max((r["sessions"] for r in rows if r["sustained"]), default=0),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
