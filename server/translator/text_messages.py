"""Chat messages of the text tier: caption text in, translation out.

The conversation mirrors the speech tier's (``messages.py``): a system prompt
for the target language, then per segment one user turn (the source text, then
the same ``term_map`` lines when terms were retrieved) and one assistant turn
(the answer). Plain string contents: every OpenAI-compatible server (vLLM,
llama.cpp's server, Ollama) accepts them, and the prompt prefix stays
byte-identical from turn to turn, so prefix caches hit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from server.translator.messages import Message, language_name, term_map_text

TEXT_SYSTEM_PROMPT = (
    "You are a professional simultaneous interpreter. You will be given an English "
    "transcript piece by piece, as it is spoken, and you need to translate each piece "
    "into {language} text, continuing your previous translation. Reply with the "
    "translation of the new piece only. Use the 'term_map' as a reference for "
    "terminology if provided."
)


def text_system_message(lang: str) -> Message:
    return {"role": "system", "content": TEXT_SYSTEM_PROMPT.format(language=language_name(lang))}


def text_user_turn(source: str, term_map: Sequence[tuple[str, str]]) -> Message:
    """One segment's user turn: its caption text, then the term_map lines if any."""
    return {"role": "user", "content": source + (term_map_text(term_map) or "")}


def build_text_messages(
    lang: str, history: Iterable[tuple[Message, str]], user_turn: Message
) -> list[Message]:
    messages = [text_system_message(lang)]
    for past_user, answer in history:
        messages.append(past_user)
        messages.append({"role": "assistant", "content": answer})
    messages.append(user_turn)
    return messages
