from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer, start_server

# One real CPU vLLM per test session, shared by every directory that needs one: a
# session-scoped fixture imported into a module or a sub-conftest is a separate
# fixture there, so each such place would start (and keep) its own ~3.5 GiB server.
from tests.support.vllm_server import (  # noqa: F401  (fixtures)
    vllm,
    vllm_server,
    vllm_text,
    vllm_text_server,
)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One embedded-default gateway for the test session, pace limit raised for speed."""
    server = start_server(tmp_path_factory.mktemp("gateway"), "--max-pace", "8")
    yield server
    server.stop()


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Path:
    return tmp_path
