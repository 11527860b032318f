"""The speech front end of one session: voice activity, utterances and Whisper captions.

Silero VAD cuts the stream into utterances (speech, then ``end_silence`` of
silence; at most ``max_utterance_seconds``, cut at the quietest point of the
last seconds when a speaker never pauses). Only utterances reach Whisper, so
silence and noise between them are never transcribed.

Two kinds of caption, with different guarantees:

* **Final** captions: each utterance is transcribed once, whole, when it ends
  (:class:`server.asr.recognizer.WhisperRecognizer`, greedy, no sampling),
  prompted with the session's hotwords and the text of its previous final
  captions. Everything that decides them (VAD state, utterance bounds, the
  prompt) is a function of the audio samples alone, so the same audio gives
  the same final captions in every session, at any pace, under any load.
* **Revisable** captions: while an utterance is open, its audio so far is
  re-transcribed at most every ``partial_step_seconds`` of new audio, and
  LocalAgreement-2 marks the words two successive decodes agree on as stable.
  These decodes are optional: the caller asks for one only at the end of the
  audio it has queued, so a session that falls behind skips them and spends
  the CPU on final captions instead.

Blocking and CPU-bound; it runs inside a speech worker process
(:mod:`server.workers`), never on the event loop. Per-session state is the
VAD and one utterance buffer; the model is shared by the worker's sessions.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kernel.frames import PIPELINE_RATE, ChunkAnalysis, RecognizedWord, SourceCaption
from server.asr.agreement import LocalAgreement
from server.asr.recognizer import Transcription, WhisperRecognizer
from server.asr.vad import FRAME as VAD_FRAME
from server.asr.vad import SileroVad, VadStream


@dataclass(frozen=True, slots=True)
class FrontEndParams:
    captions: bool = True
    vad_threshold: float = 0.5
    # Silence that ends an utterance, and audio kept from before its start.
    end_silence_seconds: float = 0.5
    preroll_seconds: float = 0.25
    max_utterance_seconds: float = 15.0
    # A too-long utterance is cut at the quietest frame of its last this-many seconds.
    cut_search_seconds: float = 3.0
    # Utterances with less voiced audio than this are noise blips: not transcribed.
    min_speech_seconds: float = 0.2
    # New utterance audio between two revisable decodes.
    partial_step_seconds: float = 0.48
    # A revisable decode re-reads at most this much of a long utterance: the words
    # before it are kept from the previous hypothesis (and given as prompt), so its
    # cost does not grow with the utterance.
    partial_window_seconds: float = 6.0
    # Characters of previous final captions given to Whisper as context.
    prompt_chars: int = 200


@dataclass(frozen=True, slots=True)
class SliceIn:
    """A piece of audio for the front end (16 kHz int16 mono)."""

    chunk_index: int
    start_sample: int
    pcm: np.ndarray
    # The last piece of the stream: close any open utterance.
    final: bool = False


class SpeechFrontEnd:
    """VAD + Whisper captions for one audio stream, fed piece by piece."""

    def __init__(
        self, params: FrontEndParams, vad: VadStream, recognizer: WhisperRecognizer | None
    ) -> None:
        self._params = params
        self._vad = vad
        self._recognizer = recognizer if params.captions else None
        self._remainder = np.zeros(0, dtype=np.int16)
        self._remainder_start = 0
        preroll_frames = max(1, round(params.preroll_seconds * PIPELINE_RATE / VAD_FRAME))
        self._preroll: deque[tuple[int, np.ndarray]] = deque(maxlen=preroll_frames)
        capacity = (
            int(params.max_utterance_seconds * PIPELINE_RATE) + (preroll_frames + 2) * VAD_FRAME
        )
        # The open utterance: its audio, and per VAD frame its speech probability.
        self._buffer = np.zeros(capacity, dtype=np.int16)
        self._probs = np.zeros(capacity // VAD_FRAME + 1, dtype=np.float32)
        self._frames = 0
        self._in_utterance = False
        self._utterance_start = 0
        self._voiced_frames = 0
        self._silence_run = 0
        self._partial_at = 0
        self._last_partial = ""
        self._hypothesis: tuple[RecognizedWord, ...] = ()
        self._agreement = LocalAgreement()
        self._context = ""
        self._hotwords = ""
        # Samples of the stream's last, shorter-than-a-frame piece in the buffer.
        self._tail = 0

    def set_hotwords(self, hotwords: str) -> None:
        """Glossary terms to bias recognition toward, from the next decode on."""
        self._hotwords = hotwords

    def process(self, slices: Sequence[SliceIn], partial: bool = True) -> list[ChunkAnalysis]:
        """One analysis per slice; a revisable decode after the last one if ``partial``."""
        results = []
        for piece in slices:
            captions: list[SourceCaption] = []
            words: list[RecognizedWord] = []
            speech = self._push(piece, captions, words)
            results.append(
                ChunkAnalysis(
                    chunk_index=piece.chunk_index,
                    speech_samples=speech,
                    captions=tuple(captions),
                    words=tuple(words),
                )
            )
        if results and partial and self._in_utterance and self._recognizer is not None:
            caption, partial_words = self._revisable()
            last = results[-1]
            results[-1] = ChunkAnalysis(
                chunk_index=last.chunk_index,
                speech_samples=last.speech_samples,
                captions=last.captions + ((caption,) if caption is not None else ()),
                words=last.words,
                partial_words=partial_words,
            )
        return results

    # -- VAD and utterances --------------------------------------------------

    def _push(
        self, piece: SliceIn, captions: list[SourceCaption], words: list[RecognizedWord]
    ) -> int:
        if len(self._remainder):
            audio = np.concatenate([self._remainder, piece.pcm])
            position = self._remainder_start
        else:
            audio, position = piece.pcm, piece.start_sample
        usable = len(audio) - len(audio) % VAD_FRAME
        speech_samples = 0
        for offset in range(0, usable, VAD_FRAME):
            frame = audio[offset : offset + VAD_FRAME]
            prob = self._vad.probability(frame)
            if prob >= self._params.vad_threshold:
                speech_samples += VAD_FRAME
            self._step(position + offset, frame, prob, captions, words)
        self._remainder = audio[usable:].copy()
        self._remainder_start = position + usable
        if piece.final:
            if self._in_utterance and len(self._remainder):
                self._append(self._remainder, 0.0)
            self._remainder = np.zeros(0, dtype=np.int16)
            if self._in_utterance:
                self._end_utterance(self._frames, captions, words)
        return speech_samples

    def _step(
        self,
        sample: int,
        frame: np.ndarray,
        prob: float,
        captions: list[SourceCaption],
        words: list[RecognizedWord],
    ) -> None:
        is_speech = prob >= self._params.vad_threshold
        if not self._in_utterance:
            if not is_speech:
                self._preroll.append((sample, frame.copy()))
                return
            self._start_utterance(sample)
        self._append(frame, prob)
        if is_speech:
            self._voiced_frames += 1
        self._silence_run = 0 if is_speech else self._silence_run + VAD_FRAME
        if self._silence_run >= self._params.end_silence_seconds * PIPELINE_RATE:
            self._end_utterance(self._frames, captions, words)
        elif self._frames * VAD_FRAME >= self._params.max_utterance_seconds * PIPELINE_RATE:
            self._cut_utterance(captions, words)

    def _open_utterance(self, start_sample: int) -> None:
        """An empty open utterance starting at ``start_sample``."""
        self._in_utterance = True
        self._utterance_start = start_sample
        self._silence_run = 0
        self._voiced_frames = 0
        self._frames = 0
        self._partial_at = 0
        self._last_partial = ""
        self._hypothesis = ()
        self._agreement.reset()

    def _start_utterance(self, sample: int) -> None:
        preroll = list(self._preroll)
        self._preroll.clear()
        self._open_utterance(preroll[0][0] if preroll else sample)
        for _, frame in preroll:
            self._append(frame, 0.0)

    def _append(self, pcm: np.ndarray, prob: float) -> None:
        start = self._frames * VAD_FRAME
        self._buffer[start : start + len(pcm)] = pcm
        if len(pcm) == VAD_FRAME:
            self._probs[self._frames] = prob
            self._frames += 1
        else:  # the stream's last, shorter piece
            self._tail = len(pcm)

    def _cut_utterance(self, captions: list[SourceCaption], words: list[RecognizedWord]) -> None:
        """End a too-long utterance at its quietest recent frame; the rest opens the next."""
        search = max(1, round(self._params.cut_search_seconds * PIPELINE_RATE / VAD_FRAME))
        low = max(1, self._frames - search)
        cut = low + int(np.argmin(self._probs[low : self._frames]))
        rest_audio = self._buffer[cut * VAD_FRAME : self._frames * VAD_FRAME].copy()
        rest_probs = self._probs[cut : self._frames].copy()
        rest_start = self._utterance_start + cut * VAD_FRAME
        self._end_utterance(cut, captions, words)
        self._open_utterance(rest_start)
        for i, prob in enumerate(rest_probs):
            self._append(rest_audio[i * VAD_FRAME : (i + 1) * VAD_FRAME], float(prob))
            if prob >= self._params.vad_threshold:
                self._voiced_frames += 1

    def _end_utterance(
        self, frames: int, captions: list[SourceCaption], words: list[RecognizedWord]
    ) -> None:
        samples = frames * VAD_FRAME + self._tail
        self._tail = 0
        self._in_utterance = False
        if self._recognizer is None:
            return
        enough = self._voiced_frames * VAD_FRAME >= self._params.min_speech_seconds * PIPELINE_RATE
        result = self._decode(samples) if enough else None
        recognised = self._words(result) if result is not None else []
        words.extend(recognised)
        text = " ".join(w.word for w in recognised)
        if text:
            self._context = (self._context + " " + text)[-self._params.prompt_chars :]
        if text or self._last_partial:
            # An empty final caption withdraws a revisable one that came to nothing.
            captions.append(
                SourceCaption(
                    text=text,
                    start_sample=self._utterance_start,
                    end_sample=recognised[-1].end_sample
                    if recognised
                    else self._utterance_start + samples,
                    final=True,
                    words=tuple(recognised),
                )
            )
        self._last_partial = ""

    # -- decoding -----------------------------------------------------------------

    def _decode(self, samples: int, start: int = 0, *, final: bool = True) -> Transcription:
        """Transcribe utterance samples ``[start, samples)``."""
        assert self._recognizer is not None
        audio = self._buffer[start:samples].astype(np.float32) / 32768.0
        prompt = self._recognizer.prompt_tokens(self._hotwords, self._context)
        return self._recognizer.transcribe(audio, prompt, final=final)

    def _words(self, result: Transcription, offset: int = 0) -> list[RecognizedWord]:
        start = self._utterance_start + offset
        return [
            RecognizedWord(
                word=w.text.strip(),
                start_sample=start + round(w.start * PIPELINE_RATE),
                end_sample=start + round(w.end * PIPELINE_RATE),
                confidence=w.probability,
            )
            for w in result.words
            if w.text.strip()
        ]

    def _settled_prefix(self, samples: int) -> list[RecognizedWord]:
        """Words of a long utterance's last hypothesis not to re-read: up to the last
        clause end (punctuation) before the decode window, so no word is cut."""
        window_start = samples - round(self._params.partial_window_seconds * PIPELINE_RATE)
        if window_start <= 0:
            return []
        words = list(self._hypothesis)
        for i in range(len(words) - 1, -1, -1):
            word = words[i]
            if word.end_sample - self._utterance_start <= window_start and word.word.endswith(
                _CLAUSE_END
            ):
                return words[: i + 1]
        return []

    def _revisable(self) -> tuple[SourceCaption | None, tuple[RecognizedWord, ...]]:
        samples = self._frames * VAD_FRAME
        step = self._params.partial_step_seconds * PIPELINE_RATE
        if samples - self._partial_at < step:
            return None, ()
        self._partial_at = samples
        kept = self._settled_prefix(samples)
        offset = kept[-1].end_sample - self._utterance_start if kept else 0
        recognised = kept + self._words(self._decode(samples, offset, final=False), offset)
        self._hypothesis = tuple(recognised)
        stable = self._agreement.update([w.word for w in recognised])
        text = " ".join(w.word for w in recognised)
        if not text or text == self._last_partial:
            return None, tuple(recognised)
        self._last_partial = text
        return (
            SourceCaption(
                text=text,
                start_sample=self._utterance_start,
                end_sample=self._utterance_start + samples,
                final=False,
                words=tuple(recognised),
                stable_words=stable,
            ),
            tuple(recognised),
        )


_CLAUSE_END = (".", ",", "?", "!", ";", ":")


@functools.cache
def _shared_vad() -> SileroVad:
    return SileroVad()


def default_vad_factory() -> VadStream:
    """A VAD stream on this process's shared Silero model."""
    return _shared_vad().stream()
