"""SFT rows → model inputs, with the loss on the assistant tokens only.

A row (:mod:`training.sft_format`) is rendered with the model's own chat template,
the way vLLM renders the translator's requests (audio parts become the template's audio
placeholder, ``<|audio_start|><|audio_pad|><|audio_end|>`` for Qwen3-Omni). The assistant
spans are found by rendering the conversation turn by turn: the text a turn adds after
the generation prompt (``<|im_start|>assistant\\n``) up to and including the end-of-turn
token is what the model writes at serving time, so those tokens carry the loss; the
system prompt, the user turns (audio and term_map) and the template's scaffolding do not.
This needs a template whose rendering of a conversation starts with the rendering of its
beginning (Qwen's templates do); any other is refused rather than mis-masked.

Audio: 16 kHz WAVs → the model's Whisper features; each audio placeholder is expanded to
as many audio tokens as the audio encoder outputs for its features (the Qwen3-Omni
processor's rule). Only the tokenizer and the feature extractor are needed, not the full
processor (whose video half needs torchvision).

A conversation longer than ``max_length`` tokens keeps its first turns (whole turns only).
"""

from __future__ import annotations

import json
import logging
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.sft_format import split_content

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
DEFAULT_N_WINDOW = 50  # Qwen3OmniMoeProcessor.n_window


@dataclass(frozen=True, slots=True)
class EncodedExample:
    input_ids: torch.Tensor  # (L,)
    labels: torch.Tensor  # (L,), IGNORE_INDEX outside assistant turns
    input_features: torch.Tensor | None  # (n_audio, mel, frames)
    feature_attention_mask: torch.Tensor | None  # (n_audio, frames)
    turns: int  # assistant turns kept

    @property
    def label_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row.get("messages"), list):
                    raise ValueError(f"{path}:{number}: a row needs a `messages` list")
                rows.append(row)
    return rows


def read_wav_float(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV (as the builder writes them) as float32 in [-1, 1]."""
    with wave.open(str(path), "rb") as wav:
        if wav.getframerate() != 16_000 or wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit PCM")
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def chat_messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's messages as chat-template input: ``<audio>`` → an audio part."""
    out: list[dict[str, Any]] = []
    for message in row["messages"]:
        content = message["content"]
        if message["role"] == "user" and isinstance(content, str) and "<audio>" in content:
            parts: list[dict[str, Any]] = []
            for piece in split_content(content):
                parts.append(
                    {"type": "audio"} if piece is None else {"type": "text", "text": piece}
                )
            out.append({"role": "user", "content": parts})
        else:
            out.append({"role": message["role"], "content": content})
    return out


class ConversationEncoder:
    """Renders, tokenises and masks conversations for one model's tokenizer and features."""

    def __init__(
        self,
        tokenizer: Any,
        feature_extractor: Any,
        *,
        max_length: int = 3072,
        n_window: int = DEFAULT_N_WINDOW,
    ) -> None:
        self.tokenizer = tokenizer
        self.features = feature_extractor
        self.max_length = max_length
        self.n_window = n_window
        self.audio_token = tokenizer.audio_token
        self.audio_token_id = tokenizer.convert_tokens_to_ids(self.audio_token)
        self.end_of_turn = tokenizer.eos_token  # "<|im_end|>"

    @classmethod
    def from_pretrained(cls, model: str, max_length: int = 3072) -> ConversationEncoder:
        from transformers import AutoFeatureExtractor, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
        if not tokenizer.chat_template:
            tokenizer.chat_template = _processor_chat_template(model)
        features = AutoFeatureExtractor.from_pretrained(model)
        return cls(tokenizer, features, max_length=max_length, n_window=_n_window(model))

    # -- text -----------------------------------------------------------------------------

    def _render(self, messages: Sequence[dict[str, Any]], generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=generation_prompt
        )
        return str(text)

    def render(self, messages: Sequence[dict[str, Any]]) -> list[tuple[str, bool]]:
        """The conversation's text as pieces, each marked True when it carries the loss."""
        pieces: list[tuple[str, bool]] = []
        done = ""
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = self._render(messages[:i], generation_prompt=True)
            turn = self._render(messages[: i + 1], generation_prompt=False)
            if not prompt.startswith(done) or not turn.startswith(prompt):
                raise ValueError(
                    "the chat template does not render a conversation as an extension of its "
                    "beginning; the assistant turns cannot be located for loss masking"
                )
            answer = turn[len(prompt) :]
            end = answer.find(self.end_of_turn)
            if end < 0:
                raise ValueError(f"the template ends assistant turns without {self.end_of_turn!r}")
            answer = answer[: end + len(self.end_of_turn)]
            pieces.append((prompt[len(done) :], False))
            pieces.append((answer, True))
            done = prompt + answer
        whole = self._render(messages, generation_prompt=False)
        if not whole.startswith(done):
            raise ValueError("the chat template renders the whole conversation differently")
        if whole[len(done) :]:
            pieces.append((whole[len(done) :], False))
        return [(text, label) for text, label in pieces if text]

    # -- audio ----------------------------------------------------------------------------

    def audio_features(
        self, audios: Sequence[np.ndarray]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Features, their mask and the audio-token count of each clip (processor's rule)."""
        from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import (
            _get_feat_extract_output_lengths,
        )

        out = self.features(
            list(audios),
            sampling_rate=16_000,
            padding=True,
            truncation=False,
            return_attention_mask=True,
            return_tensors="pt",
        )
        mask = out["attention_mask"]
        counts = _get_feat_extract_output_lengths(mask.sum(-1), self.n_window)
        return out["input_features"], mask, [int(c) for c in counts]

    # -- together -------------------------------------------------------------------------

    def encode(self, row: dict[str, Any], base: Path) -> EncodedExample | None:
        """The row as model inputs (None when not even its first turn fits ``max_length``)."""
        messages = chat_messages(row)
        pieces = self.render(messages)
        text = "".join(t for t, _ in pieces)
        label_spans, at = [], 0
        for piece, label in pieces:
            if label:
                label_spans.append((at, at + len(piece)))
            at += len(piece)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = encoded["input_ids"]
        offsets: list[tuple[int, int]] = encoded["offset_mapping"]
        audio_paths = [base / p for p in row.get("audios", [])]
        if ids.count(self.audio_token_id) != len(audio_paths):
            raise ValueError(
                f"{len(audio_paths)} audios for {ids.count(self.audio_token_id)} audio placeholders"
            )
        features = mask = None
        counts: list[int] = []
        if audio_paths:
            features, mask, counts = self.audio_features([read_wav_float(p) for p in audio_paths])
        # Expand placeholders, label assistant tokens, note where each turn ends.
        out_ids: list[int] = []
        out_labels: list[int] = []
        turn_ends: list[tuple[int, int]] = []  # (length so far, audios so far)
        span = 0
        audio_index = 0
        for token, (start, _) in zip(ids, offsets, strict=True):
            while span < len(label_spans) and start >= label_spans[span][1]:
                turn_ends.append((len(out_ids), audio_index))
                span += 1
            if token == self.audio_token_id:
                out_ids += [token] * counts[audio_index]
                out_labels += [IGNORE_INDEX] * counts[audio_index]
                audio_index += 1
                continue
            inside = span < len(label_spans) and label_spans[span][0] <= start
            out_ids.append(token)
            out_labels.append(token if inside else IGNORE_INDEX)
        while span < len(label_spans):
            turn_ends.append((len(out_ids), audio_index))
            span += 1
        keep, audios_kept, turns = len(out_ids), audio_index, len(turn_ends)
        if keep > self.max_length:
            fitting = [(n, a) for n, a in turn_ends if n <= self.max_length]
            if not fitting:
                return None
            keep, audios_kept = fitting[-1]
            turns = len(fitting)
        if features is not None and mask is not None:
            features, mask = features[:audios_kept], mask[:audios_kept]
            if audios_kept == 0:
                features = mask = None
        return EncodedExample(
            input_ids=torch.tensor(out_ids[:keep], dtype=torch.long),
            labels=torch.tensor(out_labels[:keep], dtype=torch.long),
            input_features=features,
            feature_attention_mask=mask,
            turns=turns,
        )


def _processor_chat_template(model: str) -> str:
    """The processor's chat template (``chat_template.jinja`` or ``.json``) when the
    tokenizer has none of its own, as in some Qwen-Omni releases; vLLM falls back the same way."""
    from transformers.utils.hub import cached_file

    for name in ("chat_template.jinja", "chat_template.json"):
        path = cached_file(model, name, _raise_exceptions_for_missing_entries=False)
        if path is None:
            continue
        text = Path(path).read_text(encoding="utf-8")
        return str(json.loads(text)["chat_template"]) if name.endswith(".json") else text
    raise ValueError(f"{model} has no chat template (tokenizer or processor)")


def _n_window(model: str) -> int:
    """The processor's ``n_window`` when its config sets one, else the class default."""
    from transformers.utils.hub import cached_file

    for name in ("processor_config.json", "preprocessor_config.json"):
        path = cached_file(model, name, _raise_exceptions_for_missing_entries=False)
        if path is not None:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if isinstance(data.get("n_window"), int):
                return int(data["n_window"])
    return DEFAULT_N_WINDOW


def collate(examples: Sequence[EncodedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; audio features of all examples stacked in order."""
    length = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), length), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n], labels[i, :n], attention[i, :n] = e.input_ids, e.labels, 1
    batch = {"input_ids": ids, "labels": labels, "attention_mask": attention}
    with_audio = [e for e in examples if e.input_features is not None]
    if with_audio:
        frames = max(int(e.input_features.shape[-1]) for e in with_audio)  # type: ignore[union-attr]
        feats, masks = [], []
        for e in with_audio:
            assert e.input_features is not None and e.feature_attention_mask is not None
            pad = frames - e.input_features.shape[-1]
            feats.append(torch.nn.functional.pad(e.input_features, (0, pad)))
            masks.append(torch.nn.functional.pad(e.feature_attention_mask, (0, pad)))
        batch["input_features"] = torch.cat(feats)
        batch["feature_attention_mask"] = torch.cat(masks)
    return batch


def iter_examples(
    encoder: ConversationEncoder, rows: Sequence[dict[str, Any]], base: Path, order: Sequence[int]
) -> Iterator[tuple[int, EncodedExample]]:
    """Encoded rows in ``order`` (rows too long for even one turn are skipped, logged)."""
    for index in order:
        example = encoder.encode(rows[index], base)
        if example is None:
            log.warning("row %d: its first turn is longer than max_length; skipped", index)
            continue
        yield index, example
