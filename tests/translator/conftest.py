"""Fixtures for the translator tests; the real-vLLM fixtures live in tests/support."""

from tests.support.vllm_server import vllm, vllm_server

__all__ = ["vllm", "vllm_server"]
