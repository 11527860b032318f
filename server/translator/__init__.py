"""The translate stage: a speech-LLM tier (vLLM) and a text-LLM tier (any OpenAI-compatible server).

Public API (what the gateway's composition root uses)::

    service = build_service(TranslatorParams(url=..., model=...), LlmMode.TEXT)
    # or VllmTranslatorService(...) / TextTranslatorService(...) directly
    ...
    await service.aclose()

Modules: ``params`` (configuration), ``messages`` (prompt assembly, shared
with training-data builders), ``history`` (trim policies), ``tags`` (streaming
tag removal), ``client`` (SSE chat client), ``breaker`` (circuit breaker),
``service`` (the speech tier's per-session stage); the text tier: ``text_service``,
``text_policy`` (when to translate), ``text_messages``, ``terms_check``; ``mode``
(choosing a tier). Nothing here does work at import time.
"""

from server.translator.params import (
    AudioPartStyle,
    DecodingParams,
    FaultParams,
    HistoryParams,
    LlmMode,
    PromptStyle,
    TextParams,
    TranslatorParams,
    TrimPolicy,
)
from server.translator.service import VllmSessionTranslator, VllmTranslatorService
from server.translator.text_policy import TextPolicyParams
from server.translator.text_service import TextSessionTranslator, TextTranslatorService

__all__ = [
    "AudioPartStyle",
    "DecodingParams",
    "FaultParams",
    "HistoryParams",
    "LlmMode",
    "PromptStyle",
    "TextParams",
    "TextPolicyParams",
    "TextSessionTranslator",
    "TextTranslatorService",
    "TranslatorParams",
    "TrimPolicy",
    "VllmSessionTranslator",
    "VllmTranslatorService",
]
