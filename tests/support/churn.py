"""Session churn: waves of short concurrent sessions against one gateway, and its memory.

Used by ``tests/reliability/test_churn.py`` (short CI form) and ``bench/churn.py``
(the long run). A wave opens N sessions at once; each sends ``seconds`` of speech in
one frame and then either ``session.end`` (and reads to the close) or vanishes without a
close handshake (``drop``: the session waits out the resume grace). Between waves the
harness waits until the gateway holds no session, then reads the RSS of the gateway's
whole process tree (the speech workers included).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.client import read_wav
from tests.support.soak import process_tree_rss_mib


def tree_rss_mib(pid: int) -> float:
    """RSS of ``pid`` and all its descendants: psutil when installed, else /proc."""
    try:
        import psutil
    except ImportError:
        return process_tree_rss_mib(pid)
    try:
        root = psutil.Process(pid)
        total = root.memory_info().rss
        for child in root.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                continue
    except psutil.NoSuchProcess:
        return 0.0
    return total / 2**20


@dataclass
class WaveResult:
    index: int
    kind: str  # "complete" or "drop"
    sessions: int
    completed: int = 0
    dropped: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    rss_before_mib: float = 0.0
    rss_after_mib: float = 0.0

    def line(self) -> str:
        failures = ", ".join(f"{k} × {v}" for k, v in sorted(self.failures.items())) or "none"
        return (
            f"wave {self.index:3d} {self.kind:8s} {self.sessions} sessions: "
            f"{self.completed} completed, {self.dropped} dropped, failures: {failures}; "
            f"{self.seconds:5.1f} s; tree RSS {self.rss_before_mib:7.1f} → "
            f"{self.rss_after_mib:7.1f} MiB"
        )


async def _session(url: str, pcm: bytes, *, drop: bool, lm: int) -> str:
    """One short session; returns how it ended ("completed", "dropped" or a failure)."""
    try:
        async with connect(url, open_timeout=30, close_timeout=5) as ws:
            await ws.send(json.dumps({"type": "session.start", "lm": lm}))
            started = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if started["type"] != "session.started":
                return f"error:{started.get('code', started['type'])}"
            await ws.send(pcm)
            if drop:
                # Mid-stream, no session.end, no close handshake (a lost network).
                ws.transport.abort()
                return "dropped"
            await ws.send(json.dumps({"type": "session.end"}))
            last: dict = {}
            codes: list[str] = []
            async with asyncio.timeout(120):
                async for message in ws:
                    last = json.loads(message)
                    if last["type"] == "error":
                        codes.append(last["code"])
            if codes:
                return f"error:{codes[0]}"
            if last.get("type") == "session.summary" and last.get("reason") == "completed":
                return "completed"
            return f"ended:{last.get('type')}"
    except (ConnectionClosed, InvalidStatus, OSError, TimeoutError) as exc:
        return f"transport:{type(exc).__name__}"


async def sessions_open(http_url: str) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        return int((await http.get(f"{http_url}/readyz")).json()["sessions"])


async def settle(http_url: str, *, within: float = 120.0, quiet: float = 1.0) -> None:
    """Wait until the gateway holds no session (dropped ones wait out the grace)."""
    async with asyncio.timeout(within):
        for _ in iter(int, 1):  # polling a remote process: no event to await
            if not await sessions_open(http_url):
                break
            await asyncio.sleep(0.25)
    await asyncio.sleep(quiet)  # workers finish releasing what the last session held


async def wave(
    ws_url: str,
    http_url: str,
    server_pid: int,
    pcm: bytes,
    *,
    index: int,
    sessions: int,
    drop: bool = False,
    lm: int = 2,
) -> WaveResult:
    result = WaveResult(index, "drop" if drop else "complete", sessions)
    result.rss_before_mib = tree_rss_mib(server_pid)
    began = time.monotonic()
    outcomes = await asyncio.gather(
        *(_session(ws_url, pcm, drop=drop, lm=lm) for _ in range(sessions))
    )
    for outcome in outcomes:
        if outcome == "completed":
            result.completed += 1
        elif outcome == "dropped":
            result.dropped += 1
        else:
            result.failures[outcome] += 1
    await settle(http_url)
    result.seconds = time.monotonic() - began
    result.rss_after_mib = tree_rss_mib(server_pid)
    return result


def speech_pcm(wav: Path, seconds: float, offset_seconds: float = 5.0) -> bytes:
    """``seconds`` of real speech as one s16le frame (16 kHz)."""
    rate, samples = read_wav(wav)
    start = int(offset_seconds * rate)
    chunk = samples[start : start + int(seconds * rate)]
    return np.ascontiguousarray(chunk, dtype=np.int16).tobytes()
