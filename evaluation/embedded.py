"""A gateway of our own for an evaluation run: ``rasst serve`` in a child process on loopback.

A child process rather than an in-process app: the harness measures the gateway as users run
it (its own speech workers, its own event loop), and a crash there cannot take the scorer down.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from kernel.probe import NotHealthy, wait_until_healthy

READY_TIMEOUT = 120.0  # seconds; speech workers load the Whisper model at start-up


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class EmbeddedOptions:
    data_dir: Path
    llm_url: str | None = None
    llm_model: str | None = None
    # Translator tier of the gateway (--llm-mode speech|text|auto); None: its default.
    llm_mode: str | None = None
    # The harness paces itself by the gateway's progress (see runner.py); the pace limit
    # only has to stay out of the way.
    max_pace: float = 1000.0
    workers: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


class EmbeddedGateway:
    """Context manager: start ``rasst serve``, wait for /readyz, stop it on exit."""

    def __init__(self, options: EmbeddedOptions) -> None:
        self._options = options
        self.port = _free_port()
        self.log_path = options.data_dir / "gateway.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> EmbeddedGateway:
        o = self._options
        o.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port)]
        args += ["--max-pace", f"{o.max_pace:g}", "--log-level", "warning"]
        if o.llm_url:
            args += ["--llm-url", o.llm_url]
        if o.llm_model:
            args += ["--llm-model", o.llm_model]
        if o.llm_mode:
            args += ["--llm-mode", o.llm_mode]
        if o.workers:
            args += ["--workers", str(o.workers)]
        env = {
            **os.environ,
            "RASST_DATA_DIR": str(o.data_dir),
            # A whole talk may be queued ahead of a slow pipeline (e.g. a CPU LLM); the
            # harness limits how far ahead it sends, these limits only must not end the run.
            "RASST_MAX_BACKLOG_SECONDS": "3600",
            "RASST_IDLE_TIMEOUT_SECONDS": "600",
            "RASST_MAX_OUTBOUND_EVENTS": "100000",
            **o.extra_env,
        }
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        try:
            wait_until_healthy(
                f"{self.http_url}/readyz",
                READY_TIMEOUT,
                process=self._process,
                describe_exit=lambda code: f"the gateway exited with {code}:\n{self.log()[-4000:]}",
            )
        except NotHealthy as exc:
            self.stop()
            raise RuntimeError(str(exc)) from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class GatewayConfig(Protocol):
    """What an offline run says about its gateway (``EvalConfig`` has all of it)."""

    @property
    def server(self) -> str | None: ...
    @property
    def out(self) -> Path: ...
    @property
    def llm_url(self) -> str | None: ...
    @property
    def llm_model(self) -> str | None: ...
    @property
    def llm_mode(self) -> str | None: ...
    @property
    def workers(self) -> int | None: ...


@contextmanager
def gateway_for(config: GatewayConfig) -> Iterator[str]:
    """The base URL of the run's gateway: ``--server`` if given, else one started for it.

    The evaluation, the sweep and the term_map ablation all run this way; an embedded
    gateway keeps its data (and log) in ``out/gateway`` and stops when the block ends.
    """
    if config.server:
        yield config.server.rstrip("/")
        return
    options = EmbeddedOptions(
        data_dir=config.out / "gateway",
        llm_url=config.llm_url,
        llm_model=config.llm_model,
        llm_mode=config.llm_mode,
        workers=config.workers,
    )
    with EmbeddedGateway(options) as gateway:
        yield gateway.http_url
