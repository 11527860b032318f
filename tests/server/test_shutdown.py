"""SIGTERM on the real server process: live sessions are drained, not cut."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from websockets.asyncio.client import connect

from server.client import read_wav
from tests.support.live_server import TWO_CITIES, start_server
from tests.support.ws import Transcript, read_all, start_message


async def test_sigterm_drains_live_sessions(tmp_path: Path) -> None:
    server = start_server(tmp_path, env={"RASST_SHUTDOWN_GRACE_SECONDS": "20"})
    _, pcm = read_wav(TWO_CITIES)
    try:
        async with connect(server.ws_url) as ws:
            await ws.send(start_message(lm=1))
            for i in range(0, 16000 * 5, 1600):
                await ws.send(pcm[i : i + 1600].tobytes())
            await asyncio.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            transcript = await read_all(ws, Transcript(), within=30)
        assert "shutting_down" in [w["code"] for w in transcript.of_type("warning")]
        summary = transcript.events[-1]
        assert summary["type"] == "session.summary" and summary["reason"] == "shutdown"
        # Everything sent before the signal was processed: 5 s of audio, 6 chunks.
        assert summary["audio_seconds"] == 5.0
        assert [e["chunk"] for e in transcript.of_type("chunk.done")] == list(range(6))
        assert transcript.close_code == 1001
        # uvicorn re-raises the captured signal after a clean shutdown.
        assert server.process.wait(30) in (0, -signal.SIGTERM)
    finally:
        server.stop(signal.SIGKILL)
