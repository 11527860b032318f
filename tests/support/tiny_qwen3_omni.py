"""Build a tiny, randomly initialised Qwen3-Omni (thinker) that a real vLLM can serve.

Run with the vLLM environment's python (it needs torch, transformers, tokenizers):

    .venv-vllm/bin/python tests/support/tiny_qwen3_omni.py OUT_DIR

The result (about 5 MB) exercises the same vLLM code path as the production
model: Qwen3-Omni thinker architecture, Whisper features, audio placeholder
expansion, the chat template, prefix caching. Its text is meaningless; tests
assert on protocol, token counts and cache figures only. Nothing is downloaded:
the byte-level BPE tokenizer is trained here on the Python standard library's
source text.
"""

from __future__ import annotations

import argparse
import json
import sys
import sysconfig
from pathlib import Path

VOCAB_SIZE = 4000

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<|audio_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
    "<tts_text_bos_single>",
]

# Renders text parts as text and audio/image/video parts as their placeholders,
# like Qwen3-Omni's template (vLLM detects the "openai" content format from the
# loop over message content).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] }}\n"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- elif part['type'] in ('audio', 'input_audio', 'audio_url') -%}"
    "<|audio_start|><|audio_pad|><|audio_end|>"
    "{%- elif part['type'] in ('image', 'image_url') -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part['type'] in ('video', 'video_url') -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "<|im_end|>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)


def _corpus(limit_bytes: int = 2_000_000) -> list[str]:
    """Local text to train the tokenizer on: the standard library's sources."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts: list[str] = []
    total = 0
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        texts.append(text)
        total += len(text)
        if total >= limit_bytes:
            break
    return texts


def build_tokenizer(out: Path):  # -> PreTrainedTokenizerBase
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]

    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "audio_token": "<|audio_pad|>",
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "audio_bos_token": "<|audio_start|>",
            "audio_eos_token": "<|audio_end|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 32768
    return tokenizer


def build(out: Path) -> None:
    import torch
    from transformers import (
        Qwen3OmniMoeConfig,
        Qwen3OmniMoeForConditionalGeneration,
    )

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    vocab_size = (len(tokenizer) + 63) // 64 * 64
    hidden = 128

    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "moe_intermediate_size": 64,
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "decoder_sparse_step": 1,
        "max_position_embeddings": 8192,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": [6, 5, 5],
            "interleaved": True,
            "mrope_interleaved": True,
        },
        "pad_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
    }
    audio_config = {
        "num_mel_bins": 128,
        "encoder_layers": 2,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 128,
        "d_model": 64,
        "output_dim": hidden,
        "downsample_hidden_size": 32,
        "max_source_positions": 1500,
        "n_window": 50,
        "n_window_infer": 800,
        "conv_chunksize": 500,
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 2,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": hidden,
        "num_position_embeddings": 256,
        "deepstack_visual_indexes": [1],
        # Read by vLLM; transformers' config does not define them.
        "image_size": 256,
        "apply_vit_abs_pos_embed": True,
    }
    thinker_config = {
        "audio_config": audio_config,
        "vision_config": vision_config,
        "text_config": text_config,
        "audio_token_id": ids["<|audio_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "audio_start_token_id": ids["<|audio_start|>"],
        "audio_end_token_id": ids["<|audio_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "user_token_id": tokenizer.convert_tokens_to_ids("user"),
        "position_id_per_seconds": 13,
    }
    config = Qwen3OmniMoeConfig(
        thinker_config=thinker_config,
        enable_audio_output=False,
        im_start_token_id=ids["<|im_start|>"],
        im_end_token_id=ids["<|im_end|>"],
        tts_pad_token_id=ids["<tts_pad>"],
        tts_bos_token_id=ids["<tts_text_bos>"],
        tts_eos_token_id=ids["<tts_text_eod>"],
    )
    config.architectures = ["Qwen3OmniMoeForConditionalGeneration"]

    torch.manual_seed(0)
    model = Qwen3OmniMoeForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(out)
    # Fields vLLM reads that transformers' configs do not define (or drop on save).
    config_path = out / "config.json"
    saved = json.loads(config_path.read_text())
    saved["thinker_config"]["vision_config"].update(
        image_size=vision_config["image_size"],
        apply_vit_abs_pos_embed=vision_config["apply_vit_abs_pos_embed"],
    )
    saved["thinker_config"]["audio_end_token_id"] = ids["<|audio_end|>"]
    saved["thinker_config"]["text_config"]["tie_word_embeddings"] = False
    config_path.write_text(json.dumps(saved, indent=2))

    save_processor(out, tokenizer)
    tokenizer.save_pretrained(out)
    generation = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "eos_token_id": ids["<|im_end|>"]}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))


def save_processor(out: Path, tokenizer) -> None:  # tokenizer: PreTrainedTokenizerBase
    """The full processor; without torchvision (its video half needs it) only the audio half.

    A text+audio trainer needs just the tokenizer and the Whisper feature extractor;
    vLLM's environment has torchvision and gets the full processor.
    """
    import importlib.util

    from transformers import WhisperFeatureExtractor

    features = WhisperFeatureExtractor(feature_size=128, sampling_rate=16_000)
    if importlib.util.find_spec("torchvision") is None:
        features.save_pretrained(out)
        return
    from transformers import Qwen2VLImageProcessor, Qwen3OmniMoeProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    processor = Qwen3OmniMoeProcessor(
        # Patch sizes must match the vision config.
        image_processor=Qwen2VLImageProcessor(patch_size=16),
        video_processor=Qwen2VLVideoProcessor(patch_size=16),
        feature_extractor=features,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write the model into")
    args = parser.parse_args(argv)
    build(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
