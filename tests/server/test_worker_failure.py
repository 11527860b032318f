"""A speech worker process dies mid-session: the session warns, recovers and completes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

from websockets.asyncio.client import connect

from server.client import read_wav
from tests.support.live_server import TWO_CITIES, start_server
from tests.support.ws import END, Transcript, read_all, start_message


def _worker_pids(parent: int) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(parent), "-f", "spawn_main"], capture_output=True, text=True
    ).stdout
    return [int(pid) for pid in out.split()]


async def test_killed_speech_worker_is_replaced_and_the_session_goes_on(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--workers", "1", "--max-pace", "4")
    _, pcm = read_wav(TWO_CITIES)
    try:
        (worker,) = _worker_pids(server.process.pid)
        transcript = Transcript()
        async with connect(server.ws_url) as ws:
            await ws.send(start_message(lm=1))
            reader = asyncio.create_task(read_all(ws, transcript, within=120))
            for i in range(0, 16000 * 20, 1600):
                await ws.send(pcm[i : i + 1600].tobytes())
                await asyncio.sleep(0.025)
                if i == 16000 * 6:
                    os.kill(worker, signal.SIGKILL)
            await ws.send(END)
            await reader
        warnings = [w["code"] for w in transcript.of_type("warning")]
        assert "speech_frontend_failed" in warnings
        summary = transcript.events[-1]
        assert summary["reason"] == "completed"
        assert [e["chunk"] for e in transcript.of_type("chunk.done")] == list(range(21))
        # Captions resume on the replacement worker.
        lost_at = next(w["chunk"] for w in transcript.of_type("warning"))
        later = [
            c for c in transcript.of_type("caption") if c["chunk"] > lost_at + 1 and c["final"]
        ]
        assert later and any(c["text"] for c in later)
        replacement = _worker_pids(server.process.pid)
        assert len(replacement) == 1 and replacement[0] != worker
    finally:
        server.stop()


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.add(pid)
    return alive


def _descendants(root: int) -> set[int]:
    found: set[int] = set()
    frontier = [root]
    while frontier:
        out = subprocess.run(["pgrep", "-P", str(frontier.pop())], capture_output=True, text=True)
        children = {int(pid) for pid in out.stdout.split()}
        frontier.extend(children - found)
        found |= children
    return found


async def test_no_process_outlives_a_killed_gateway(tmp_path: Path) -> None:
    """Speech workers and the letter-to-sound helper exit when the gateway dies by SIGKILL.

    An empty cache directory makes the helper process train letter-to-sound,
    so the kill lands while it is busy.
    """
    import httpx

    server = start_server(
        tmp_path, "--workers", "1", env={"RASST_CACHE_DIR": str(tmp_path / "cache")}
    )
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            upload = await http.post(
                f"{server.http_url}/v1/glossaries",
                files={"file": ("g.csv", "en,de\nseason of light,Zeit des Lichts\n", "text/csv")},
            )
        glossary_id = upload.json()["id"]
        _, pcm = read_wav(TWO_CITIES)
        transcript = Transcript()
        async with connect(server.ws_url) as ws:
            await ws.send(start_message(lm=1, glossary_ids=[glossary_id]))
            reader = asyncio.create_task(read_all(ws, transcript, within=60))
            for i in range(0, 16000 * 3, 1600):
                await ws.send(pcm[i : i + 1600].tobytes())
            await asyncio.sleep(2)
            spawned = _descendants(server.process.pid)
            assert len(spawned) >= 2, spawned  # a speech worker and the helper at least
            server.process.kill()
            server.process.wait(10)
            reader.cancel()
        for _ in range(50):
            alive = _alive(spawned)
            if not alive:
                break
            await asyncio.sleep(0.2)
        assert not alive, f"orphaned processes: {alive}"
    finally:
        server.stop()
