"""The translate stage: streaming speech-LLM translation from a vLLM server.

Public API (what the gateway's composition root uses)::

    service = VllmTranslatorService(TranslatorParams(url=..., model=..., api_key=...))
    ...
    await service.aclose()

Modules: ``params`` (configuration), ``messages`` (prompt assembly, shared
with training-data builders), ``history`` (trim policies), ``tags`` (streaming
tag removal), ``client`` (SSE chat client), ``breaker`` (circuit breaker),
``service`` (the per-session stage). Nothing here does work at import time.
"""

from server.translator.params import (
    AudioPartStyle,
    DecodingParams,
    FaultParams,
    HistoryParams,
    PromptStyle,
    TranslatorParams,
    TrimPolicy,
)
from server.translator.service import VllmSessionTranslator, VllmTranslatorService

__all__ = [
    "AudioPartStyle",
    "DecodingParams",
    "FaultParams",
    "HistoryParams",
    "PromptStyle",
    "TranslatorParams",
    "TrimPolicy",
    "VllmSessionTranslator",
    "VllmTranslatorService",
]
