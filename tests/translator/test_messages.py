"""Prompt assembly: faithful to the reference format, byte for byte."""

from __future__ import annotations

import base64
import io
import wave

import numpy as np
import pytest

from server.translator.messages import (
    SYSTEM_PROMPT,
    audio_part,
    build_messages,
    build_user_turn,
    language_name,
    system_message,
    term_map_text,
    wav_bytes,
)
from server.translator.params import AudioPartStyle


@pytest.mark.parametrize(
    ("lang", "name"),
    [
        ("zh", "Chinese"),
        ("de", "German"),
        ("ja", "Japanese"),
        ("zh-CN", "Chinese"),
        ("de_AT", "German"),
        ("xx", "xx"),
    ],
)
def test_language_names(lang: str, name: str) -> None:
    assert language_name(lang) == name


def test_system_prompt_is_the_reference_prompt() -> None:
    assert system_message("de") == {
        "role": "system",
        "content": "You are a professional simultaneous interpreter. You will be given chunks of "
        "English audio and you need to translate the audio into German text. Use the "
        "'term_map' as a reference for terminology if provided.",
    }
    assert "{language}" in SYSTEM_PROMPT


def test_wav_is_16k_mono_s16_and_lossless() -> None:
    pcm = np.arange(-800, 800, dtype=np.int16)
    with wave.open(io.BytesIO(wav_bytes(pcm))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16_000)
        assert np.array_equal(np.frombuffer(wav.readframes(wav.getnframes()), "<i2"), pcm)


def test_audio_part_styles() -> None:
    pcm = np.zeros(160, dtype=np.int16)
    data = base64.b64encode(wav_bytes(pcm)).decode()
    assert audio_part(pcm) == {
        "type": "input_audio",
        "input_audio": {"data": data, "format": "wav"},
    }
    assert audio_part(pcm, AudioPartStyle.AUDIO_URL) == {
        "type": "audio_url",
        "audio_url": {"url": f"data:audio/wav;base64,{data}"},
    }


def test_term_map_text_format_order_and_dedup() -> None:
    pairs = [
        ("BLEU score", "BLEU值"),
        ("contrastive learning", "对比学习"),
        ("BLEU score", "other"),
    ]
    assert term_map_text(pairs) == "\n\nterm_map:\nBLEU score=BLEU值\ncontrastive learning=对比学习"


def test_term_map_line_breaks_cannot_forge_lines() -> None:
    assert term_map_text([("a\nb", "c\r\nd=e")]) == "\n\nterm_map:\na b=c d=e"


def test_no_terms_means_no_text_part() -> None:
    assert term_map_text([]) is None
    audio = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    assert build_user_turn(audio, []) == {"role": "user", "content": [audio]}


def test_user_turn_is_audio_then_term_map() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "QUJD", "format": "wav"}}
    turn = build_user_turn(audio, [("GPU", "显卡")])
    assert turn == {
        "role": "user",
        "content": [audio, {"type": "text", "text": "\n\nterm_map:\nGPU=显卡"}],
    }


def test_messages_alternate_with_raw_answers() -> None:
    u1 = build_user_turn({"type": "input_audio"}, [])
    u2 = build_user_turn({"type": "input_audio"}, [("a", "b")])
    messages = build_messages("zh", [(u1, "<t>对比学习</t>很")], u2)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2] == {"role": "assistant", "content": "<t>对比学习</t>很"}
    assert messages[3] is u2
