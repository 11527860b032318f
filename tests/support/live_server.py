"""A real gateway process on loopback, started the way users start it (``rasst serve``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kernel.probe import NotHealthy, wait_until_healthy

REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO.parent / "shared" / "data" / "speech"
TWO_CITIES = SPEECH / "two_cities_16k.wav"
# The short sample the repository ships (samples/README.md): "It was the best of times, it
# was the worst of times, it was the age of wisdom" (6.4 s).
SAMPLE = REPO / "samples" / "two_cities_6s.wav"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_server(
    data_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> LiveServer:
    """Start ``rasst serve`` on a free port and wait until /readyz answers 200."""
    port = free_port()
    log_path = data_dir / f"server-{port}.log"
    full_env = {**os.environ, "RASST_DATA_DIR": str(data_dir), **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port), *args],
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(process, port, log_path)
    try:
        wait_until_healthy(
            f"{server.http_url}/readyz",
            ready_timeout,
            process=process,
            describe_exit=lambda code: f"server exited with {code}:\n{server.log()}",
        )
    except NotHealthy as exc:
        server.stop(signal.SIGKILL)
        raise RuntimeError(f"{exc}:\n{server.log()}") from None
    return server
