"""A real retriever service process on loopback (``python -m retriever.service``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kernel.probe import NotHealthy, wait_until_healthy
from tests.support.live_server import REPO, free_port


@dataclass
class RetrieverProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: an outage, not a shutdown."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_retriever(
    log_path: Path,
    port: int | None = None,
    ready_timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
) -> RetrieverProcess:
    """Start the service and wait until /healthz answers (it warms up first).

    ``env`` is added to this process's environment (e.g. ``RASST_RETRIEVER_ENCODER``);
    ``args`` go to ``serve`` after the port.
    """
    port = port or free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "retriever.service", "--port", str(port), *args],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = RetrieverProcess(process, port, log_path)
    try:
        wait_until_healthy(
            f"{service.url}/healthz",
            ready_timeout,
            process=process,
            describe_exit=lambda _: f"retriever exited:\n{log_path.read_text(errors='replace')}",
            request_timeout=1.0,
        )
    except NotHealthy as exc:
        service.kill()
        raise RuntimeError(f"the retriever service did not become healthy: {exc}") from None
    return service
