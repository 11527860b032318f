"""Serving messages ↔ the chat SFT layout that ms-swift and LLaMA-Factory read.

The builder first makes each conversation exactly as the translator sends it
(:func:`server.translator.messages.build_messages`: system prompt, user turns from
:func:`~server.translator.messages.build_user_turn` with a base64 WAV audio part and the
term_map text, assistant turns with the raw answer). :func:`to_sft_row` then turns it
into one JSONL row::

    {"messages": [{"role": "system", "content": "You are a professional ..."},
                  {"role": "user", "content": "<audio>\\n\\nterm_map:\\nBLEU=BLEU"},
                  {"role": "assistant", "content": "... <t>BLEU</t> ..."}, ...],
     "audios": ["audio/talk-1/lm2/000003.wav", ...]}

Each audio part becomes an ``<audio>`` placeholder at its place in the content, and the
WAV bytes inside it are written, unchanged, to the file named in ``audios`` (one per
placeholder, in order). :func:`serving_messages` reverses it: reading the files back and
base64-encoding them gives the very bytes the translator would send for those chunks.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from server.translator.messages import Message
from server.translator.params import AudioPartStyle

AUDIO_PLACEHOLDER = "<audio>"
_DATA_URL_PREFIX = "data:audio/wav;base64,"


def audio_part_bytes(part: Message) -> bytes:
    """The WAV file inside an ``input_audio`` or ``audio_url`` content part."""
    if part.get("type") == "input_audio":
        return base64.b64decode(part["input_audio"]["data"], validate=True)
    if part.get("type") == "audio_url":
        url = part["audio_url"]["url"]
        if not url.startswith(_DATA_URL_PREFIX):
            raise ValueError("only base64 WAV data URLs can be written out")
        return base64.b64decode(url[len(_DATA_URL_PREFIX) :], validate=True)
    raise ValueError(f"not an audio part: {part.get('type')!r}")


def audio_part_from_bytes(
    wav: bytes, style: AudioPartStyle = AudioPartStyle.INPUT_AUDIO
) -> Message:
    data = base64.b64encode(wav).decode("ascii")
    if style is AudioPartStyle.AUDIO_URL:
        return {"type": "audio_url", "audio_url": {"url": _DATA_URL_PREFIX + data}}
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def _flatten(content: str | Sequence[Message], on_audio: Callable[[Message], None]) -> str:
    if isinstance(content, str):
        if AUDIO_PLACEHOLDER in content:
            raise ValueError(f"message text contains the placeholder {AUDIO_PLACEHOLDER!r}")
        return content
    pieces: list[str] = []
    for part in content:
        if part.get("type") == "text":
            text = part["text"]
            if AUDIO_PLACEHOLDER in text:
                raise ValueError(f"message text contains the placeholder {AUDIO_PLACEHOLDER!r}")
            pieces.append(text)
        else:
            on_audio(part)
            pieces.append(AUDIO_PLACEHOLDER)
    return "".join(pieces)


def to_sft_row(
    messages: Sequence[Message], audio_paths: Sequence[str], write: Callable[[str, bytes], None]
) -> dict[str, Any]:
    """The SFT row of a serving conversation; ``write(path, wav)`` stores each audio part.

    ``audio_paths`` names the files for the audio parts in order (as they will appear in
    ``audios``); a path may repeat (the same chunk twice), it is then written once.
    """
    paths = iter(audio_paths)
    audios: list[str] = []

    def store(part: Message) -> None:
        path = next(paths)
        if path not in audios:
            write(path, audio_part_bytes(part))
        audios.append(path)

    rows = [{"role": m["role"], "content": _flatten(m["content"], store)} for m in messages]
    if next(paths, None) is not None:
        raise ValueError("more audio paths than audio parts")
    return {"messages": rows, "audios": audios}


def split_content(content: str) -> list[str | None]:
    """``"<audio>\\n\\nterm_map:…"`` → ``[None, "\\n\\nterm_map:…"]`` (None: an audio slot)."""
    out: list[str | None] = []
    for i, text in enumerate(content.split(AUDIO_PLACEHOLDER)):
        if i:
            out.append(None)
        if text:
            out.append(text)
    return out


def serving_messages(
    row: dict[str, Any],
    read: Callable[[str], bytes],
    style: AudioPartStyle = AudioPartStyle.INPUT_AUDIO,
) -> list[Message]:
    """The translator's request messages for a row: placeholders → base64 WAV parts."""
    audios = iter(row.get("audios", []))
    messages: list[Message] = []
    for message in row["messages"]:
        content: str = message["content"]
        if message["role"] != "user" or AUDIO_PLACEHOLDER not in content:
            messages.append({"role": message["role"], "content": content})
            continue
        parts: list[Message] = []
        for piece in split_content(content):
            if piece is None:
                parts.append(audio_part_from_bytes(read(next(audios)), style))
            else:
                parts.append({"type": "text", "text": piece})
        messages.append({"role": "user", "content": parts})
    if next(audios, None) is not None:
        raise ValueError("more audios than <audio> placeholders")
    return messages


def file_reader(base: Path) -> Callable[[str], bytes]:
    """Reads ``audios`` entries relative to ``base`` (the JSONL's folder) or absolute."""

    def read(path: str) -> bytes:
        return (base / path).read_bytes()

    return read
