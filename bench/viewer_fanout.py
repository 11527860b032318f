"""Viewers and the event bus: fan-out latency with 1, 100 and 1000 viewers on one session.

One speaker streams real speech (``two_cities_16k.wav``, captions on) to gateway A at 2×
real time; N viewers follow its viewer link, either on A itself (no bus: the in-process feed)
or on gateway B through Redis (a real ``redis-server``: A writes the stream, B's mirror reads
it). For every numbered event the fan-out latency is the time from its arrival at the speaker
to its arrival at each viewer, all clients in this one process on the same clock.

    python bench/viewer_fanout.py --viewers 1 100 1000 --seconds 30

The speaker runs in a process of its own; the N viewers share one event loop in another,
and both share the 2 cores with the gateways and Redis, so the viewers' own reading time is
part of every number: an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.client import read_wav  # noqa: E402
from tests.support.live_server import TWO_CITIES, LiveServer, start_server  # noqa: E402
from tests.support.redis_server import start_redis  # noqa: E402

RATE = 16_000


@dataclass
class Arrivals:
    at: dict[int, float] = field(default_factory=dict)
    close_code: int | None = None


class _Channel:
    """The speaker process's side: put to the bench, get from it."""

    def __init__(self, to_speaker: Any, from_speaker: Any) -> None:
        self._in, self._out = to_speaker, from_speaker

    def put(self, item: Any) -> None:
        self._out.put(item)

    def get(self) -> Any:
        return self._in.get()


async def _viewer(url: str, out: Arrivals, ready: asyncio.Event) -> None:
    for _ in range(40):
        async with connect(url, max_queue=None) as ws:
            ready.set()
            async for message in ws:
                # Only the seq is needed; a full parse per viewer would measure json.
                start = message.find('"seq":')
                if start < 0:
                    continue
                end = message.find(",", start)
                seq = int(message[start + 6 : end if end > 0 else None].strip(" }"))
                out.at.setdefault(seq, time.monotonic())
            out.close_code = ws.close_code
        if out.at:
            return
        await asyncio.sleep(0.25)  # the bus has not seen the session yet


def _speak(ws_url: str, seconds: float, to_bench: Any) -> None:
    """The speaker, in its own process: its arrival times are not delayed by the viewers'."""

    async def speak() -> None:
        _, speech = read_wav(TWO_CITIES)
        audio = speech[: int(RATE * seconds)]
        arrivals: dict[int, float] = {}
        async with connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "session.start", "lm": 2, "target_languages": []}))
            started = json.loads(await ws.recv())
            arrivals[started["seq"]] = time.monotonic()
            to_bench.put(started["viewer_token"])
            to_bench.get()  # every viewer is connected

            async def read() -> None:
                async for message in ws:
                    arrivals.setdefault(json.loads(message)["seq"], time.monotonic())

            reader = asyncio.create_task(read())
            frame = RATE // 10
            started_at = time.monotonic()
            for i in range(0, len(audio), frame):
                await ws.send(audio[i : i + frame].tobytes())
                delay = started_at + (i + frame) / RATE / 2.0 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await ws.send(json.dumps({"type": "session.end"}))
            await reader
        to_bench.put(arrivals)

    asyncio.run(speak())


async def _run(
    speaker_pod: LiveServer, viewer_pod: LiveServer, viewers: int, seconds: float
) -> dict[str, Any]:
    # CLOCK_MONOTONIC is one clock for every process on the machine.
    context = multiprocessing.get_context("spawn")
    to_speaker, from_speaker = context.Queue(), context.Queue()
    channel = _Channel(to_speaker, from_speaker)
    speaker_process = context.Process(
        target=_speak, args=(speaker_pod.ws_url, seconds, channel), daemon=True
    )
    speaker_process.start()
    loop = asyncio.get_running_loop()
    token = await loop.run_in_executor(None, from_speaker.get)
    viewer_arrivals = [Arrivals() for _ in range(viewers)]
    base = viewer_pod.ws_url.rsplit("/v1/", 1)[0]
    url = f"{base}/v1/view/{token}"
    readies = [asyncio.Event() for _ in range(viewers)]
    tasks = [
        asyncio.create_task(_viewer(url, arrivals, ready))
        for arrivals, ready in zip(viewer_arrivals, readies, strict=True)
    ]
    async with asyncio.timeout(120):
        for ready in readies:
            await ready.wait()
    to_speaker.put("go")
    await asyncio.wait_for(asyncio.gather(*tasks), 300)
    speaker_at: dict[int, float] = await loop.run_in_executor(None, from_speaker.get)
    speaker_process.join(30)
    speaker = Arrivals(at=speaker_at)
    latencies: list[float] = []
    complete = 0
    for arrivals in viewer_arrivals:
        # Events before the viewer joined arrive as backlog: only live ones count.
        live = [s for s in speaker.at if s > 1 and s in arrivals.at]
        latencies += [arrivals.at[s] - speaker.at[s] for s in live]
        complete += set(speaker.at) <= set(arrivals.at)
    # A viewer may read an event before the speaker's process does (on the same gateway the
    # speaker's copy waits behind the viewers' ones): that counts as 0. So also: per event,
    # from its first arrival anywhere (speaker or viewer) to its arrival at the last viewer.
    spread = []
    for seq, at in speaker.at.items():
        if seq <= 1:
            continue
        times = [a.at[seq] for a in viewer_arrivals if seq in a.at]
        if times:
            spread.append(max(times) - min([at, *times]))
    last = np.asarray(spread) * 1000
    ms = np.maximum(np.asarray(latencies), 0.0) * 1000
    return {
        "viewers": viewers,
        "events": len(speaker.at),
        "viewers_with_every_event": complete,
        "fanout_ms_p50": round(float(np.percentile(ms, 50)), 2),
        "fanout_ms_p95": round(float(np.percentile(ms, 95)), 2),
        "fanout_ms_max": round(float(ms.max()), 2),
        "all_viewers_ms_p50": round(float(np.percentile(last, 50)), 2),
        "all_viewers_ms_p95": round(float(np.percentile(last, 95)), 2),
    }


def _rss_mib(pod: LiveServer) -> float:
    """The gateway process's resident memory (its speech workers are other processes)."""
    for line in Path(f"/proc/{pod.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        redis = start_redis(root)
        pods = []
        try:
            for name, bus in (("a", True), ("b", True), ("solo", False)):
                (root / name).mkdir()
                env = {"RASST_MAX_OUTBOUND_EVENTS": "100000"}
                if bus:
                    env["RASST_REDIS_URL"] = redis.url
                pods.append(start_server(root / name, "--max-pace", "4", "--workers", "1", env=env))
            a, b, solo = pods
            modes = (
                ("one gateway, no Redis", solo, solo),
                ("same gateway, Redis on", a, a),
                ("other gateway, via Redis", a, b),
            )
            for viewers in args.viewers:
                for mode, speaker_pod, viewer_pod in modes:
                    row = asyncio.run(_run(speaker_pod, viewer_pod, viewers, args.seconds))
                    row["mode"] = mode
                    row["viewer_gateway_rss_mib"] = _rss_mib(viewer_pod)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        finally:
            for pod in pods:
                pod.stop()
            redis.kill()
    report = {"machine": platform.platform(), "seconds": args.seconds, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
