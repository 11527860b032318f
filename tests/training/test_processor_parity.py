"""The trainer's encoding equals the real Qwen3-Omni processor's (which needs torchvision).

The trainer builds model inputs from the tokenizer and the Whisper feature extractor alone;
the vLLM environment has the full ``Qwen3OmniMoeProcessor``. Same text (the chat template
of a built row), same audio: the same input ids (audio placeholders expanded) and features.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.vllm_server import REPO, build_tiny_model, vllm_python
from tests.training.support import write_synthetic_corpus
from training.builder import BuildParams, build_dataset

pytestmark = pytest.mark.vllm

SCRIPT = """
import sys, torch
from pathlib import Path
from transformers import AutoProcessor
from training.sft_dataset import ConversationEncoder, chat_messages, read_rows, read_wav_float
model, data = sys.argv[1], Path(sys.argv[2])
processor = AutoProcessor.from_pretrained(model)
encoder = ConversationEncoder.from_pretrained(model, max_length=100000)
rows = read_rows(data)
for row in rows:
    mine = encoder.encode(row, data.parent)
    text = processor.apply_chat_template(chat_messages(row), tokenize=False)
    audio = [read_wav_float(data.parent / p) for p in row["audios"]]
    theirs = processor(text=[text], audio=audio, return_tensors="pt")
    assert torch.equal(theirs["input_ids"][0], mine.input_ids), "input ids differ"
    assert torch.equal(theirs["feature_attention_mask"], mine.feature_attention_mask)
    assert torch.allclose(theirs["input_features"], mine.input_features), "features differ"
print(len(rows))
"""


def test_encoding_matches_the_processor(tmp_path: Path) -> None:
    python = vllm_python()
    if not python.exists():
        pytest.skip(f"no vLLM environment at {python}")
    cache = Path(os.environ.get("RASST_TEST_CACHE", REPO / ".cache"))
    model = build_tiny_model(python, cache)
    corpus, glossary = write_synthetic_corpus(tmp_path / "in")
    result = build_dataset(
        BuildParams(
            corpus=corpus,
            glossary=glossary,
            lang="de",
            out=tmp_path / "out",
            lms=(1, 4),
            conversation_chunks=4,
        )
    )
    done = subprocess.run(
        [str(python), "-c", SCRIPT, str(model), str(result.rows)],
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) == result.stats["conversations"] > 1
