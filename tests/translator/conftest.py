"""Fixtures for the translator tests: the real-vLLM ones (``vllm``, ``vllm_server``)
come from tests/conftest.py, so every directory shares one server per test session."""
