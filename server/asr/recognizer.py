"""One Whisper transcription of a short stretch of audio, with word times.

faster-whisper's ``transcribe`` always runs the encoder on a 30 s window
(~0.55 s for tiny.en on one CPU thread, whatever the audio length). Streaming
calls transcribe a few seconds at a time, so this module drives the
CTranslate2 model directly and encodes only the audio plus a short tail of
padding: a 3 s utterance costs ~25 ms of encoder time instead of ~550 ms.
The tokenizer, features, word alignment and punctuation merging are
faster-whisper's own.

Decoding at temperature 0 (beam search for final captions, greedy for
revisable ones) with no sampling fallback: the same audio and prompt give the
same words on every call (a fallback that samples would make captions differ
between sessions). Hallucination guards run on every
result: the model's no-speech probability, the average log-probability, the
gzip compression ratio of the text (Whisper's repetition loops compress
well), and a cap on tokens per second of audio.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
_FRAMES_PER_SECOND = 100  # mel frames (hop 160)
_MAX_FRAMES = 3000  # the encoder's 30 s window
# Sentence punctuation faster-whisper merges into the neighbouring word.
_PREPEND = "\"'“¿([{-"
_APPEND = "\"'.。,，!！?？:：”)]}、"


@dataclass(frozen=True, slots=True)
class DecodeParams:
    # Encoder input: the audio rounded up to this step, plus this much silence, so
    # the window takes few distinct sizes and the last word is not cut. Shorter
    # windows (1 s + 1 s) made tiny.en loop on a 3.5 s utterance of real speech
    # (two_cities WER 0.08 vs 0.00 at 5 s + 2 s, and 0.00 with the full 30 s).
    context_step_seconds: float = 5.0
    context_pad_seconds: float = 2.0
    max_prompt_tokens: int = 120
    # Final captions use beam search (two_cities WER 0.042 -> 0.017 with tiny.en, +25 %
    # CPU on finals); revisable ones stay greedy: they are many and soon replaced.
    final_beam_size: int = 5
    # Guards (Whisper's own defaults where it has them).
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    max_tokens_per_second: float = 8.0
    language: str = "en"


@dataclass(frozen=True, slots=True)
class TimedWord:
    """A recognised word; times in seconds from the start of the transcribed audio."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class Transcription:
    words: tuple[TimedWord, ...]
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    # Why the result was dropped ("" when it was kept).
    rejected: str = ""

    @property
    def text(self) -> str:
        return "".join(w.text for w in self.words).strip()


EMPTY = Transcription(words=())


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def context_frames(samples: int, params: DecodeParams) -> int:
    """Encoder frames for ``samples`` of audio: rounded up to a step, padded, even, ≤ 30 s."""
    seconds_ = samples / SAMPLE_RATE
    step = params.context_step_seconds
    padded = math.ceil(seconds_ / step) * step + params.context_pad_seconds
    frames = int(round(padded * _FRAMES_PER_SECOND))
    frames += frames % 2  # the encoder's convolution halves the frame count
    return min(frames, _MAX_FRAMES)


class WhisperRecognizer:
    """Transcribes short utterances with a loaded faster-whisper model. Blocking.

    One instance serves many sessions (it holds no per-session state); calls
    from one thread at a time.
    """

    def __init__(self, model: Any, params: DecodeParams | None = None) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self._model = model  # faster_whisper.WhisperModel
        self._params = params or DecodeParams()
        multilingual = bool(model.model.is_multilingual)
        self._tokenizer = Tokenizer(
            model.hf_tokenizer,
            multilingual,
            task="transcribe",
            language=self._params.language if multilingual else None,
        )
        self._suppress = list(get_suppressed_tokens(self._tokenizer, [-1]))
        self._features = model.feature_extractor

    @property
    def params(self) -> DecodeParams:
        return self._params

    def prompt_tokens(self, hotwords: str, context: str) -> list[int]:
        """The decoder prompt: hotwords first, then the tail of the text before this audio."""
        budget = self._params.max_prompt_tokens
        tokens: list[int] = []
        if hotwords:
            tokens = self._tokenizer.encode(" " + hotwords.strip())[: budget // 2]
        if context:
            tail = self._tokenizer.encode(" " + context.strip())
            tokens += tail[-(budget - len(tokens)) :] if budget > len(tokens) else []
        return tokens

    def transcribe(
        self, audio: np.ndarray, prompt: list[int] | None = None, *, final: bool = True
    ) -> Transcription:
        """Words of ``audio`` (float32 in [-1, 1], 16 kHz mono), or EMPTY when a guard trips.

        ``final``: a final caption (beam search); else a revisable one (greedy).

        A short encoder window that makes the model loop is retried once with
        the full 30 s window Whisper was trained on (rare; still deterministic).
        """
        if len(audio) < SAMPLE_RATE // 10:
            return EMPTY
        beam = self._params.final_beam_size if final else 1
        result = self._transcribe(audio, prompt, context_frames(len(audio), self._params), beam)
        if result.rejected in ("repetition", "runaway"):
            result = self._transcribe(audio, prompt, _MAX_FRAMES, beam)
        return result

    def _transcribe(
        self, audio: np.ndarray, prompt: list[int] | None, frames: int, beam: int
    ) -> Transcription:
        import ctranslate2

        params = self._params
        features = self._features(audio, padding=frames * 160)[:, :frames]
        content_frames = min(frames, len(audio) // 160)
        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None]))
        encoder_output = self._model.model.encode(storage)
        tokenizer = self._tokenizer
        sequence = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        if prompt:
            sequence = [tokenizer.sot_prev, *prompt, *sequence]
        max_new = max(4, int(len(audio) / SAMPLE_RATE * params.max_tokens_per_second) + 4)
        result = self._model.model.generate(
            encoder_output,
            [sequence],
            beam_size=beam,
            max_length=min(len(sequence) + max_new, 448),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        text = tokenizer.decode(tokens)
        avg_logprob = result.scores[0] / max(1, len(tokens) + 1)
        no_speech = float(result.no_speech_prob)
        ratio = compression_ratio(text)
        rejected = ""
        if not tokens:
            rejected = "empty"
        elif no_speech > params.no_speech_threshold and avg_logprob < params.log_prob_threshold:
            rejected = "no_speech"
        elif ratio > params.compression_ratio_threshold:
            rejected = "repetition"
        elif avg_logprob < params.log_prob_threshold - 0.5:
            rejected = "low_confidence"
        elif len(tokens) >= max_new:
            rejected = "runaway"
        if rejected:
            return Transcription((), no_speech, avg_logprob, ratio, rejected)
        words = self._align(tokens, encoder_output, content_frames)
        return Transcription(tuple(words), no_speech, avg_logprob, ratio)

    def _align(self, tokens: list[int], encoder_output: Any, frames: int) -> list[TimedWord]:
        from faster_whisper.transcribe import merge_punctuations

        alignment = self._model.find_alignment(self._tokenizer, [tokens], encoder_output, frames)[0]
        merge_punctuations(alignment, _PREPEND, _APPEND)
        words = []
        for item in alignment:
            if not item["word"].strip():
                continue
            words.append(
                TimedWord(
                    text=item["word"],
                    start=round(float(item["start"]), 3),
                    end=round(float(item["end"]), 3),
                    probability=float(item["probability"]),
                )
            )
        return words
