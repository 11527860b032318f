"""Fixtures of the integration tests: a gateway with a canned translator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_llm import MODEL, FakeLlm
from tests.support.live_server import LiveServer, start_server


@pytest.fixture(scope="package")
def translating_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A gateway with a canned LLM: translations without a model (their text is fixed)."""
    llm = FakeLlm(deltas=2, delta="Wort ").start()
    server = start_server(
        tmp_path_factory.mktemp("translating"), "--llm-url", llm.url, "--llm-model", MODEL
    )
    yield server
    server.stop()
    llm.close()
