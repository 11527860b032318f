"""The embedded CPU retriever's speech side: phone decoding → window vectors, re-scoring.

``PhoneticSpeechEncoder`` pairs with :class:`retriever.phonetic.PhoneticTermEncoder`
(same ``encoder_id``). A stream runs a :class:`retriever.phone_decoder.PhoneDecoder`
in the calling thread; pushing audio decodes it once, and a window's vector is
the n-gram bag of the phones whose midpoints fall inside it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from glossary.model import GlossarySnapshot
from retriever.encoders import SpeechStream
from retriever.phone_decoder import PhoneDecoder, PhoneDecoderConfig
from retriever.phonetic import (
    NgramParams,
    PhoneticTermEncoder,
    phone_ids,
    rescore_terms,
    term_phone_ids,
)
from retriever.windows import Window


class PhoneticStream:
    def __init__(self, decoder: PhoneDecoder, terms: PhoneticTermEncoder) -> None:
        self.decoder = decoder
        self._terms = terms

    def push(self, pcm: np.ndarray) -> None:
        self.decoder.feed(pcm)

    def flush(self) -> None:
        self.decoder.flush()

    def window_phones(self, window: Window) -> list[str]:
        return [p.phone for p in self.decoder.phones(window.start, window.end)]

    def encode(self, windows: Sequence[Window]) -> np.ndarray:
        # Keep phones a few windows back for late re-scoring; drop the rest.
        if windows:
            self.decoder.prune(windows[0].start - 4 * windows[0].length)
        return self._terms.encode_phone_sequences([self.window_phones(w) for w in windows])

    def close(self) -> None:
        return None


class PhoneticSpeechEncoder:
    def __init__(
        self, decoder_config: PhoneDecoderConfig | None = None, params: NgramParams | None = None
    ) -> None:
        self._decoder_config = decoder_config or PhoneDecoderConfig()
        self._terms = PhoneticTermEncoder(params)

    @property
    def encoder_id(self) -> str:
        return self._terms.encoder_id

    @property
    def dim(self) -> int:
        return self._terms.dim

    def open_stream(self) -> PhoneticStream:
        """Blocking (~0.2 s: loads the acoustic model); call it off the event loop."""
        return PhoneticStream(PhoneDecoder(self._decoder_config), self._terms)


@functools.lru_cache(maxsize=300_000)
def _variants(source: str) -> tuple[np.ndarray, ...]:
    return tuple(term_phone_ids(source))


class PhoneticRescorer:
    """Phone-alignment re-scoring of FAISS candidates (see :func:`rescore_batch`)."""

    def rescore(
        self, stream: SpeechStream, window: Window, snapshot: GlossarySnapshot, term_ids: np.ndarray
    ) -> np.ndarray:
        if not isinstance(stream, PhoneticStream):
            raise TypeError("PhoneticRescorer needs a PhoneticStream")
        query = phone_ids(stream.window_phones(window))
        variants = [_variants(snapshot.entries[int(t)].source) for t in term_ids]
        return rescore_terms(query, variants)
