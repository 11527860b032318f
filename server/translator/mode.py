"""Choosing the translator tier: speech LLM or text LLM (``--llm-mode``).

``auto`` asks the endpoint once, at start-up, which model it serves and picks
the speech tier for the model families that hear audio (Qwen*-Omni, the
released RASST speech LLMs, *-Audio models) and the text tier for anything
else. A name is only a hint; set the mode explicitly when the name says
nothing (a fine-tune called ``my-model``).
"""

from __future__ import annotations

import re

from server.translator.client import LlmError
from server.translator.params import LlmMode, TranslatorParams
from server.translator.service import VllmTranslatorService
from server.translator.text_service import TextTranslatorService

_SPEECH_MODEL = re.compile(r"omni|rasst|audio|speech|whisper|voxtral|ultravox", re.IGNORECASE)


def mode_for_model(model: str) -> LlmMode:
    """The tier a served model's name suggests."""
    return LlmMode.SPEECH if _SPEECH_MODEL.search(model) else LlmMode.TEXT


def build_service(
    params: TranslatorParams, mode: LlmMode
) -> VllmTranslatorService | TextTranslatorService:
    """The service of an explicit tier (``auto`` must be resolved first)."""
    if mode is LlmMode.TEXT:
        return TextTranslatorService(params)
    if mode is LlmMode.SPEECH:
        return VllmTranslatorService(params)
    raise ValueError("resolve LlmMode.AUTO with detect_mode() first")


async def detect_mode(params: TranslatorParams) -> LlmMode:
    """Resolve ``auto`` from the configured model name, else from the endpoint's first model.

    Raises :class:`LlmError` when the endpoint cannot be asked: a gateway must
    not guess its tier (a wrong guess sends audio to a text model, or captions to
    a speech model, for every session).
    """
    if params.model:
        return mode_for_model(params.model)
    probe = TextTranslatorService(params)
    try:
        models = await probe.client.list_models()
    finally:
        await probe.aclose()
    if not models:
        raise LlmError("the LLM server serves no model", outage=True)
    return mode_for_model(models[0])
