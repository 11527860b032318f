"""Build a tiny, randomly initialised Qwen3 *text* model that a real vLLM can serve.

Run with the vLLM environment's python (it needs torch, transformers, tokenizers):

    .venv-vllm/bin/python tests/support/tiny_qwen3_text.py OUT_DIR

The text tier of the translator (server/translator/text_service.py) talks to
any OpenAI-compatible chat server; this model gives the tests a real one on
the CPU: Qwen3ForCausalLM (the architecture of the Qwen3 text models the
recipes in docs/translator.md serve), a real byte-level BPE tokenizer (the
one the tiny Qwen3-Omni uses, trained here on local text: nothing is
downloaded), a string-content chat template, prefix caching. Its words are
meaningless; tests assert on protocol, token counts and cache figures only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The Omni builder's tokenizer (same directory; run as a script, it is importable).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_qwen3_omni import build_tokenizer  # noqa: E402

# Plain string messages, like Qwen3's own template without the thinking switch.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] }}\n"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "<|im_end|>\n"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}"
)


def build(out: Path) -> None:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out)
    tokenizer.chat_template = CHAT_TEMPLATE
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen3Config(
        vocab_size=(len(tokenizer) + 63) // 64 * 64,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=8192,
        rope_theta=1_000_000.0,
        tie_word_embeddings=False,
        pad_token_id=pad,
        eos_token_id=im_end,
        bos_token_id=None,
    )
    config.architectures = ["Qwen3ForCausalLM"]
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    generation = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "eos_token_id": im_end}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write the model into")
    args = parser.parse_args(argv)
    build(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
