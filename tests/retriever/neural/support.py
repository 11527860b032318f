"""Shared by the neural retriever tests: the torch gate and tiny random models.

Nothing is downloaded: the audio encoder and XLM-RoBERTa are built from small
configs, and the tokenizer is trained in-process on the test vocabulary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pytest


def require_neural_stack() -> None:
    """Skip the calling test module when torch & co. are missing, but fail under CI=true."""
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            raise RuntimeError(
                f"CI=true but the neural stack is missing ({exc}); install torch==2.13.0 and '.[neural]'"
            ) from exc
        pytest.skip(
            f"neural retriever tests need torch, transformers and peft ({exc}); "
            "install with `pip install torch==2.13.0 && pip install -e '.[neural]'`",
            allow_module_level=True,
        )


SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # XLM-R's order: pad id 1
BASE_WORDS = ["the", "a", "of", "and", "to", "in", "on", "for", "with", "we", "this", "is"]


def tiny_tokenizer(texts: Iterable[str]) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for text in [*BASE_WORDS, *texts]:
        for word in text.lower().split():
            vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    from tokenizers import normalizers

    tok.normalizer = normalizers.Lowercase()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def tiny_audio_config(output_dim: int = 48) -> Any:
    from transformers import Qwen3OmniMoeAudioEncoderConfig

    return Qwen3OmniMoeAudioEncoderConfig(
        num_mel_bins=128,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_dim=64,
        output_dim=output_dim,
        downsample_hidden_size=16,
        # At the default 0.02 a random tiny encoder's output does not depend on
        # its input (std across inputs ~1e-7); a pretrained base's does. 0.2
        # keeps the input visible so the toy tasks are learnable.
        initializer_range=0.2,
    )


def tiny_text_config(vocab_size: int, hidden: int = 32) -> Any:
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=80,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        # No dropout: the toy training runs must be short and deterministic.
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def tiny_build_kwargs(terms: Iterable[str] = ()) -> dict[str, Any]:
    tokenizer = tiny_tokenizer(terms)
    return {
        "audio_config": tiny_audio_config(),
        "text_config": tiny_text_config(len(tokenizer)),
        "tokenizer": tokenizer,
    }


def tiny_config(**changes: Any) -> Any:
    from retriever.neural.config import NeuralRetrieverConfig

    base: dict[str, Any] = {"target_dim": 32, "lora_preset": "paper", "device": "cpu"}
    base.update(changes)
    return NeuralRetrieverConfig(**base)


def tone(freq: float, seconds: float, rate: int = 16_000, seed: int = 0) -> Any:
    """A noisy sine: a distinct, learnable 'pronunciation' per term in the toy tasks."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    wave = 0.5 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
    return wave.astype(np.float32)
