"""Many concurrent real-time speakers against one gateway, with the accounting a soak needs.

Each client streams real speech (looped) at real time in 100 ms frames for the
whole run, reads every event, then ends its session. The report says what a
captioning operator asks after a long event:

* lost audio: per session, samples sent minus samples the summary accounts for
  and minus what the ``chunk.done`` events cover (both must be 0);
* chunk latency p50/p95/p99 and lag (from ``chunk.done``);
* server memory (RSS of the gateway and its worker processes) over time;
* every error and warning code seen.

Used by ``bench/soak.py`` (the long runs in docs/reliability.md) and by the
short soak in the test suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

RATE = 16000
FRAME = RATE // 10


@dataclass
class SessionResult:
    sent_samples: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any] | None:
        ends = [e for e in self.events if e["type"] == "session.summary"]
        return ends[-1] if ends else None

    def lost_samples(self) -> int:
        """Audio sent that the session did not account for (summary and chunk.done both)."""
        summary = self.summary
        if summary is None:
            return self.sent_samples
        done = [e for e in self.events if e["type"] == "chunk.done"]
        indices = [e["chunk"] for e in done]
        covered = round(done[-1]["end"] * RATE) if done and indices == list(range(len(done))) else 0
        accounted = min(round(summary["audio_seconds"] * RATE), covered)
        return self.sent_samples - accounted


@dataclass
class SoakReport:
    sessions: int
    seconds: float
    completed: int
    lost_audio_seconds: float
    chunks: int
    latency_ms: dict[str, float]
    max_lag_seconds: float
    lag_p99_seconds: float
    rss_mib: list[tuple[float, float]]
    codes: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        rss = [m for _, m in self.rss_mib]
        return {
            "sessions": self.sessions,
            "seconds_per_session": self.seconds,
            "completed": self.completed,
            "lost_audio_seconds": self.lost_audio_seconds,
            "chunks": self.chunks,
            "latency_ms": self.latency_ms,
            "max_lag_seconds": self.max_lag_seconds,
            "lag_p99_seconds": self.lag_p99_seconds,
            "rss_mib_first": rss[0] if rss else None,
            "rss_mib_peak": max(rss) if rss else None,
            "rss_mib_last": rss[-1] if rss else None,
            "rss_mib_samples": [(round(t), round(m, 1)) for t, m in self.rss_mib],
            "codes": self.codes,
        }


def process_tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (Linux /proc)."""
    total_kib = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total_kib += int(
                next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1]
            )
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total_kib / 1024


async def _speaker(
    url: str,
    speech: np.ndarray,
    seconds: float,
    lm: int,
    delay: float,
    result: SessionResult,
    glossary_ids: tuple[str, ...],
) -> None:
    await asyncio.sleep(delay)
    total = int(seconds * RATE)
    async with connect(url, max_size=2**22, open_timeout=60) as ws:
        start = {"type": "session.start", "lm": lm, "client": "soak", "glossary_ids": glossary_ids}
        await ws.send(json.dumps(start))

        async def read() -> None:
            async for message in ws:
                result.events.append(json.loads(message))

        reader = asyncio.create_task(read())
        started = time.monotonic()
        frames = 0
        try:
            while result.sent_samples < total:
                offset = result.sent_samples % len(speech)
                size = min(FRAME, total - result.sent_samples, len(speech) - offset)
                await ws.send(speech[offset : offset + size].tobytes())
                result.sent_samples += size
                frames += 1
                pause = started + frames * FRAME / RATE - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
            await ws.send(json.dumps({"type": "session.end"}))
        except ConnectionClosed:
            pass  # the server ended the session (its error event says why)
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(reader, timeout=seconds + 600)


async def soak(
    url: str,
    speech: np.ndarray,
    *,
    sessions: int,
    seconds: float,
    lm: int = 2,
    server_pid: int | None = None,
    sample_every: float = 10.0,
    glossary_ids: tuple[str, ...] = (),
) -> SoakReport:
    rng = random.Random(sessions)
    results = [SessionResult() for _ in range(sessions)]
    rss: list[tuple[float, float]] = []
    began = time.monotonic()

    async def sample_memory() -> None:
        while server_pid is not None:
            rss.append((time.monotonic() - began, process_tree_rss_mib(server_pid)))
            await asyncio.sleep(sample_every)

    sampler = asyncio.create_task(sample_memory())
    try:
        await asyncio.gather(
            *(
                # Starts spread over one chunk so chunk boundaries do not align.
                _speaker(url, speech, seconds, lm, rng.uniform(0, 0.96 * lm), result, glossary_ids)
                for result in results
            )
        )
    finally:
        sampler.cancel()
    if server_pid is not None:
        rss.append((time.monotonic() - began, process_tree_rss_mib(server_pid)))

    done = [e for r in results for e in r.events if e["type"] == "chunk.done"]
    latencies = np.asarray([e["latency_ms"] for e in done] or [0.0])
    lags = np.asarray([e["lag_seconds"] for e in done] or [0.0])
    codes = Counter(
        f"{e['type']}:{e['code']}"
        for r in results
        for e in r.events
        if e["type"] in {"error", "warning"}
    )
    return SoakReport(
        sessions=sessions,
        seconds=seconds,
        completed=sum(1 for r in results if r.summary and r.summary["reason"] == "completed"),
        lost_audio_seconds=round(sum(r.lost_samples() for r in results) / RATE, 3),
        chunks=len(done),
        latency_ms={
            p: round(float(np.percentile(latencies, q)), 1)
            for p, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
        },
        max_lag_seconds=round(float(lags.max()), 3),
        lag_p99_seconds=round(float(np.percentile(lags, 99)), 3),
        rss_mib=rss,
        codes=dict(codes),
    )
