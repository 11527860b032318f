"""A real vLLM OpenAI-compatible server on loopback, serving a tiny random Qwen3-Omni.

The vLLM environment is built by ``tests/support/vllm_env.sh`` (its own venv,
``.venv-vllm`` by default, or ``$VLLM_VENV``). Tests get one server per pytest
session through the :func:`vllm_server` fixture; the benchmark script uses
:func:`launch` directly. See docs/translator.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kernel.probe import NotHealthy, wait_until_healthy

REPO = Path(__file__).resolve().parents[2]
BUILDER = Path(__file__).with_name("tiny_qwen3_omni.py")
MODEL_NAME = "tiny-qwen3-omni"
# The text tier's model: a tiny Qwen3 text LM with the Omni builder's tokenizer.
TEXT_BUILDER = Path(__file__).with_name("tiny_qwen3_text.py")
TEXT_MODEL_NAME = "tiny-qwen3-text"
READY_TIMEOUT = 300.0


def vllm_python() -> Path:
    """The vLLM environment's interpreter (may not exist)."""
    if explicit := os.environ.get("VLLM_PYTHON"):
        return Path(explicit)
    venv = Path(os.environ.get("VLLM_VENV", REPO / ".venv-vllm"))
    return venv / "bin" / "python"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_tiny_model(
    python: Path, cache_root: Path, builder: Path = BUILDER, name: str = MODEL_NAME
) -> Path:
    """Build a tiny model once per builder version; returns its directory."""
    # The text builder imports the Omni builder's tokenizer: both shape the model.
    sources = b"".join(p.read_bytes() for p in dict.fromkeys((BUILDER, builder)))
    version = hashlib.sha256(sources).hexdigest()
    out = cache_root / f"{name}-{version[:12]}"
    if (out / ".complete").exists():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    subprocess.run(
        [str(python), str(builder), str(tmp)],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    (tmp / ".complete").write_text(version)
    if out.exists():  # another process won the race; theirs is as good as ours
        return out
    tmp.rename(out)
    return out


@dataclass
class VllmServer:
    """A vLLM process we started; can be killed and restarted on the same port."""

    python: Path
    model_dir: Path
    log_path: Path
    port: int = field(default_factory=_free_port)
    name: str = MODEL_NAME
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-model-len",
            "4096",
            "--enable-prefix-caching",
            "--enable-prompt-tokens-details",
            "--enforce-eager",
            *self.extra_args,
        ]

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        if self.running:
            return
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            # The vLLM venv must not see the service's packages or the repo's tests.
            "PYTHONPATH": "",
        }
        with self.log_path.open("ab") as log:
            # Own process group: vLLM forks an engine core and workers, and a
            # kill must take them all (we only ever signal this group).
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.model_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the server and its children (an abrupt crash)."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(30)

    def restart(self, timeout: float = READY_TIMEOUT) -> None:
        self.kill()
        self.start(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(30)
        else:
            # The parent is gone; make sure no orphaned engine process lingers.
            self._signal_group(signal.SIGKILL)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def _wait_healthy(self, timeout: float) -> None:
        assert self.process is not None
        try:
            wait_until_healthy(
                f"{self.url}/health",
                timeout,
                process=self.process,
                describe_exit=lambda code: f"vLLM exited with {code}:\n{self.log_tail()}",
                interval=0.5,
            )
        except NotHealthy as exc:
            self.stop()
            raise TimeoutError(f"vLLM not healthy: {exc}:\n{self.log_tail()}") from None


def launch(
    work_dir: Path,
    *,
    extra_args: tuple[str, ...] = (),
    cache_root: Path | None = None,
    text: bool = False,
) -> VllmServer:
    """Build (cached) the tiny model and start a server; the caller must ``stop()`` it.

    ``text``: the tiny Qwen3 text model (the text tier's) instead of the Qwen3-Omni.
    """
    python = vllm_python()
    if not python.exists():
        raise FileNotFoundError(f"no vLLM environment at {python}; run tests/support/vllm_env.sh")
    cache = cache_root or Path(os.environ.get("RASST_TEST_CACHE", REPO / ".cache"))
    cache.mkdir(parents=True, exist_ok=True)
    builder, name = (TEXT_BUILDER, TEXT_MODEL_NAME) if text else (BUILDER, MODEL_NAME)
    model_dir = build_tiny_model(python, cache, builder, name)
    work_dir.mkdir(parents=True, exist_ok=True)
    server = VllmServer(
        python=python,
        model_dir=model_dir,
        log_path=work_dir / "vllm.log",
        name=name,
        extra_args=extra_args,
    )
    server.start()
    return server


def _missing_environment(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI must run the vLLM tests: run tests/support/vllm_env.sh)")
    print(f"skipping vLLM tests: {reason}")
    pytest.skip(f"{reason}; run tests/support/vllm_env.sh to enable")


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """One real vLLM for the test session; tests may kill and restart it."""
    python = vllm_python()
    if not python.exists():
        _missing_environment(f"no vLLM environment at {python}")
    # Registered once, in tests/conftest.py: importing it elsewhere would make another
    # session-scoped fixture and start a second server.
    server = launch(tmp_path_factory.mktemp("vllm"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def vllm(vllm_server: VllmServer) -> VllmServer:
    """The session's vLLM, restarted first if an earlier test left it dead."""
    if not vllm_server.running:
        vllm_server.start()
    return vllm_server


@pytest.fixture(scope="session")
def vllm_text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """One real vLLM serving the tiny text model, for the text tier's tests."""
    python = vllm_python()
    if not python.exists():
        _missing_environment(f"no vLLM environment at {python}")
    server = launch(tmp_path_factory.mktemp("vllm-text"), text=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def vllm_text(vllm_text_server: VllmServer) -> VllmServer:
    """The text vLLM, restarted first if an earlier test left it dead."""
    if not vllm_text_server.running:
        vllm_text_server.start()
    return vllm_text_server
