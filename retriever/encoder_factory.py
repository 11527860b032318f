"""Which encoder the retriever service runs: the embedded phonetic one or the neural dual encoder.

Built once at service start-up (:func:`build_encoders`, blocking: the neural
models take seconds to minutes to load) from :class:`EncoderParams`, which
come from the ``RASST_*`` settings (:meth:`EncoderParams.from_settings`).
``retriever.neural`` (and so torch) is imported only when the neural encoder is
chosen, so the phonetic default runs without the neural stack installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from retriever.encoders import SpeechEncoder, TermEncoder
from retriever.phonetic import PhoneticTermEncoder

if TYPE_CHECKING:
    from retriever.neural.config import NeuralRetrieverConfig
    from retriever.settings import RetrieverSettings

log = logging.getLogger(__name__)

EncoderKind = Literal["phonetic", "neural"]


@dataclass(frozen=True, slots=True)
class EncoderParams:
    kind: EncoderKind = "phonetic"
    pooling: Literal["maxsim", "attention"] = "maxsim"
    # None: the adapters' own base models (or the release's defaults).
    audio_model: str | None = None
    text_model: str | None = None
    checkpoint: str | None = None
    adapters: Path | None = None
    device: str = "auto"
    batch_window_seconds: float = 0.005
    max_batch: int = 64
    tau: float = 0.78
    # "span": encode [chunk start − 1.92 s, chunk end] once per chunk (the
    # release; MaxSim only); "windows": independent 1.92 s windows.
    windowing: Literal["span", "windows"] = "span"
    # BGE-M3 dense+sparse mix of the term vectors; None: the weights' own (0.7
    # for the released checkpoint as the release serves it, the adapters' saved value).
    sparse_weight: float | None = None

    def __post_init__(self) -> None:
        if self.checkpoint is not None and self.adapters is not None:
            raise ValueError("give neural_checkpoint or neural_adapters, not both")

    @classmethod
    def from_settings(cls, settings: RetrieverSettings) -> EncoderParams:
        explicit = settings.model_fields_set
        with_adapters = settings.neural_adapters is not None
        # Adapters were trained on particular base models (saved next to them);
        # the settings' defaults must not silently replace those.
        audio = settings.neural_audio_model
        text = settings.neural_text_model
        return cls(
            kind=settings.retriever_encoder,
            pooling=settings.neural_pooling,
            audio_model=None if with_adapters and "neural_audio_model" not in explicit else audio,
            text_model=None if with_adapters and "neural_text_model" not in explicit else text,
            checkpoint=settings.neural_checkpoint,
            adapters=settings.neural_adapters,
            device=settings.neural_device,
            batch_window_seconds=settings.neural_batch_window_ms / 1000,
            max_batch=settings.neural_max_batch,
            tau=settings.neural_tau,
            windowing=settings.neural_windowing,
            sparse_weight=settings.neural_sparse_weight,
        )

    def neural_config(self) -> NeuralRetrieverConfig:
        """The model configuration (torch-free; reads the adapters' saved config)."""
        from retriever.neural.config import NeuralRetrieverConfig

        device = None if self.device == "auto" else self.device
        if self.adapters is not None:
            config = NeuralRetrieverConfig.from_adapters(self.adapters, device=device)
            if self.pooling != config.pooling:
                # The pooling is part of what was trained (heads, key names); the
                # adapters' own wins, and saying so beats a confusing load error.
                log.warning(
                    "neural_pooling=%s ignored: the adapters in %s use %s",
                    self.pooling,
                    self.adapters,
                    config.pooling,
                )
        else:
            config = NeuralRetrieverConfig.released(self.checkpoint).with_(
                pooling=self.pooling, device=device
            )
        changes: dict[str, object] = {}
        if self.sparse_weight is not None:
            changes["sparse_weight"] = self.sparse_weight
        if self.audio_model is not None:
            changes["audio_model"] = self.audio_model
        if self.text_model is not None:
            changes["text_model"] = self.text_model
        return config.with_(**changes) if changes else config


class EncoderStats(Protocol):
    batches: int
    items: int
    max_batch: int


@dataclass(slots=True)
class RetrievalEncoders:
    """The service's encoder pair. ``speech`` is None for the phonetic path.

    The phonetic service retrieves from the gateway's recognised words (the
    embedded retriever's word evidence), so it needs no speech encoder; the
    neural one encodes the chunk's audio.
    """

    kind: EncoderKind
    terms: TermEncoder
    speech: SpeechEncoder | None = None
    # Replaces the query's τ (see Settings.neural_tau); None keeps the query's.
    tau: float | None = None
    _stats: EncoderStats | None = None
    _close: Callable[[], None] | None = None

    @property
    def concurrent(self) -> bool:
        """Whether requests of one batch should run at once (the model batches their windows)."""
        return self.speech is not None

    def stats(self) -> dict[str, int]:
        """The model batcher's counters: forward passes and the windows they encoded."""
        if self._stats is None:
            return {}
        return {
            "forward_passes": self._stats.batches,
            "windows": self._stats.items,
            "max_windows_per_pass": self._stats.max_batch,
        }

    def close(self) -> None:
        if self._close is not None:
            self._close()


def phonetic_encoders() -> RetrievalEncoders:
    return RetrievalEncoders("phonetic", PhoneticTermEncoder())


def build_encoders(params: EncoderParams) -> RetrievalEncoders:
    """Blocking: loads the neural models when chosen (call it off the event loop)."""
    if params.kind == "phonetic":
        return phonetic_encoders()
    from retriever.neural.config import BatchingParams, NeuralServingParams
    from retriever.neural.encoder import load_neural_encoders

    neural = load_neural_encoders(
        NeuralServingParams(
            model=params.neural_config(),
            batching=BatchingParams(params.batch_window_seconds, params.max_batch),
            windowing=params.windowing,
        )
    )
    return RetrievalEncoders(
        "neural",
        neural.terms,
        neural.speech,
        tau=params.tau,
        _stats=neural.speech.stats,
        _close=neural.close,
    )
