"""Chat message assembly, faithful to the RASST reference prompt.

A conversation is: the system prompt for the target language, then per chunk
one user turn (the chunk's 16 kHz audio, then the ``term_map`` text when terms
were retrieved) and one assistant turn (the model's raw answer, tags kept).

:func:`build_user_turn` is the single place that shapes a chunk's user turn;
training-data builders must call it too so that training and serving prompts
are byte-identical.
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from kernel.frames import PIPELINE_RATE
from server.translator.params import AudioPartStyle, PromptStyle

Message = dict[str, Any]

SYSTEM_PROMPT = (
    "You are a professional simultaneous interpreter. You will be given chunks of "
    "English audio and you need to translate the audio into {language} text. "
    "Use the 'term_map' as a reference for terminology if provided."
)

# The release's eval agent gives en→zh its own prompt (its code calls it the Chinese
# training prompt; the released cap16 SFT data used SYSTEM_PROMPT for zh too)
# (note the typographic quotes around term_map, as in the release).
RELEASE_ZH_PROMPT = (
    "You are a professional simultaneous interpreter. Your task is to translate English "
    "audio chunks into accurate and fluent Chinese. Use the \u2018term_map\u2019 as a "
    "reference for terminology if provided."
)

# The prompt names the language in English; the fine-tuned models saw these names.
LANGUAGE_NAMES: Mapping[str, str] = {
    "zh": "Chinese",
    "de": "German",
    "ja": "Japanese",
    "en": "English",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "ru": "Russian",
    "ko": "Korean",
    "ar": "Arabic",
    "tr": "Turkish",
    "pl": "Polish",
    "sv": "Swedish",
    "cs": "Czech",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "th": "Thai",
    "id": "Indonesian",
    "hi": "Hindi",
    "fa": "Persian",
    "he": "Hebrew",
}


def base_language(lang: str) -> str:
    """``zh`` for ``zh``, ``zh-CN``, ``ZH_cn``."""
    return lang.replace("_", "-").split("-", 1)[0].lower()


def language_name(lang: str) -> str:
    """English name of a language code (``zh``, ``zh-CN``, ``de_DE`` …); the code if unknown."""
    return LANGUAGE_NAMES.get(base_language(lang), lang)


def system_message(lang: str, style: PromptStyle = PromptStyle.PROJECT) -> Message:
    if style is PromptStyle.RELEASE and base_language(lang) == "zh":
        return {"role": "system", "content": RELEASE_ZH_PROMPT}
    return {"role": "system", "content": SYSTEM_PROMPT.format(language=language_name(lang))}


def pad_audio(pcm: np.ndarray, min_samples: int) -> np.ndarray:
    """``pcm`` zero-padded at its end to ``min_samples`` (unchanged when long enough)."""
    if len(pcm) >= min_samples:
        return pcm
    return np.concatenate([pcm, np.zeros(min_samples - len(pcm), dtype=pcm.dtype)])


def wav_bytes(pcm: np.ndarray, rate: int = PIPELINE_RATE) -> bytes:
    """A mono 16-bit PCM WAV file holding ``pcm`` (int16 samples)."""
    samples = np.ascontiguousarray(pcm, dtype="<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def audio_part(pcm: np.ndarray, style: AudioPartStyle = AudioPartStyle.INPUT_AUDIO) -> Message:
    """The content part carrying one chunk's audio as a base64 WAV."""
    data = base64.b64encode(wav_bytes(pcm)).decode("ascii")
    if style is AudioPartStyle.AUDIO_URL:
        return {"type": "audio_url", "audio_url": {"url": f"data:audio/wav;base64,{data}"}}
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def _clean(term: str) -> str:
    # One `source=target` per line: a line break inside a term would forge a line.
    return " ".join(term.split())


def term_map_lines(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """``source=target`` lines in the given (best-first) order, one per source."""
    seen: set[str] = set()
    lines: list[str] = []
    for source, target in pairs:
        source, target = _clean(source), _clean(target)
        if not source or not target or source in seen:
            continue
        seen.add(source)
        lines.append(f"{source}={target}")
    return lines


def term_map_text(pairs: Iterable[tuple[str, str]]) -> str | None:
    """The text part that follows the audio, or None when no term was retrieved."""
    lines = term_map_lines(pairs)
    if not lines:
        return None
    return "\n\nterm_map:\n" + "\n".join(lines)


def build_user_turn(audio: Message, term_map: Sequence[tuple[str, str]]) -> Message:
    """One chunk's user turn: its audio part, then the term_map text if any.

    ``audio`` comes from :func:`audio_part` (built once per chunk and shared by
    all target languages); ``term_map`` is ``TermHits.term_map(lang)``.
    """
    content: list[Message] = [audio]
    text = term_map_text(term_map)
    if text is not None:
        content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def assistant_turn(raw: str) -> Message:
    """The model's raw answer for a chunk (tags kept: the model saw them in training)."""
    return {"role": "assistant", "content": raw}


def build_messages(
    lang: str,
    history: Iterable[tuple[Message, str]],
    user_turn: Message,
    style: PromptStyle = PromptStyle.PROJECT,
) -> list[Message]:
    """The full conversation for one request: system, past (user, answer) pairs, new turn."""
    messages = [system_message(lang, style)]
    for past_user, answer in history:
        messages.append(past_user)
        messages.append(assistant_turn(answer))
    messages.append(user_turn)
    return messages
