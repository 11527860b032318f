"""RASST session events → Deepgram live messages.

Deepgram's ``Results`` shape (``type``, ``channel_index``, ``start``, ``duration``,
``is_final``, ``speech_final``, ``channel.alternatives[].transcript/confidence/words``,
``metadata.request_id/model_info/model_uuid``, ``from_finalize``) and its closing
``Metadata`` message follow Deepgram's listen-streaming reference. RASST's extras are
separate message types a Deepgram client skips as unknown: ``Translation`` (one per
committed chunk and language) and ``Terms`` (glossary hits of a chunk).

Mapping: a revisable caption is an interim result (``is_final: false``, sent only with
``interim_results=true``); a final caption closes an utterance at a pause, so it is
``is_final: true`` and ``speech_final: true``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from server.deepgram.params import ListenParams

MODEL_UUID = "00000000-0000-0000-0000-000000000000"
# Whisper gives no per-word confidence on this path; Deepgram's field is required.
_CONFIDENCE = 1.0


class ResultMapper:
    """Stateful per connection: the request id and the audio length for ``Metadata``."""

    def __init__(self, params: ListenParams, request_id: str) -> None:
        self._params = params
        self.request_id = request_id
        self._created = datetime.now(UTC).isoformat().replace("+00:00", "Z")

    def map(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "session.started":
            self.request_id = str(event["session_id"])
            return []
        if kind == "caption":
            if not event["final"] and not self._params.interim_results:
                return []
            out = [self._results(event)]
            if event["final"] and self._params.utterance_end_ms is not None:
                out.append(
                    {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": event["end"]}
                )
            return out
        if kind == "translation.commit" and event["text"]:
            return [
                {
                    "type": "Translation",
                    "lang": event["lang"],
                    "text": event["text"],
                    "start": event["start"],
                    "duration": round(event["end"] - event["start"], 3),
                    "is_final": True,
                    "terms_used": event["terms_used"],
                }
            ]
        if kind == "terms" and event["terms"]:
            return [
                {
                    "type": "Terms",
                    "start": event["start"],
                    "duration": round(event["end"] - event["start"], 3),
                    "terms": event["terms"],
                }
            ]
        if kind == "error" and event.get("fatal"):
            return [error_message(str(event["code"]), str(event["message"]))]
        if kind == "session.summary" and event["reason"] == "completed":
            # A failed stream ends with its Error and the close, as Deepgram's do.
            return [self._metadata(float(event["audio_seconds"]))]
        return []

    def _results(self, caption: dict[str, Any]) -> dict[str, Any]:
        final = bool(caption["final"])
        words = [
            {
                "word": w["word"].strip(".,!?;:\"'").lower() or w["word"],
                "start": w["start"],
                "end": w["end"],
                "confidence": _CONFIDENCE,
                "punctuated_word": w["word"],
            }
            for w in caption.get("words", [])
        ]
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(caption["end"] - caption["start"], 3),
            "start": caption["start"],
            "is_final": final,
            "speech_final": final,
            "from_finalize": False,
            "channel": {
                "alternatives": [
                    {"transcript": caption["text"], "confidence": _CONFIDENCE, "words": words}
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": {"name": self._params.model, "version": "rasst", "arch": "rasst"},
                "model_uuid": MODEL_UUID,
            },
        }

    def _metadata(self, audio_seconds: float) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": hashlib.sha256(self.request_id.encode()).hexdigest(),
            "created": self._created,
            "duration": audio_seconds,
            "channels": self._params.channels,
        }


def error_message(code: str, message: str) -> dict[str, Any]:
    """Deepgram's ``Error`` message; ``variant`` carries RASST's stable error code."""
    return {"type": "Error", "variant": code, "description": message, "code": code}
