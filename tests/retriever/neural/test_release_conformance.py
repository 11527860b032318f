"""Checkpoint conformance: a file written the way the release's trainer writes it loads as is.

The release's own module tree (tests/retriever/neural/release_layout.py, tiny
dimensions, same attribute paths and forward computations) is trained one
optimizer step and saved with the trainer's full payload; our loader must read
it with the safe unpickler and reproduce the release model's vectors.
"""

from __future__ import annotations

from tests.retriever.neural.support import require_neural_stack

require_neural_stack()

import argparse  # noqa: E402
import fractions  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from retriever.neural.checkpoint import read_trainer_state  # noqa: E402
from retriever.neural.errors import CheckpointError, ModelLoadError  # noqa: E402
from retriever.neural.features import LogMelFrontend  # noqa: E402
from retriever.neural.models import RetrieverModels, build_models  # noqa: E402
from retriever.neural.speech import flatten_features  # noqa: E402
from retriever.neural.text import encode_terms, tokenize  # noqa: E402
from tests.retriever.neural.release_layout import (  # noqa: E402
    ReleaseRetriever,
    ReleaseTextEncoder,
    perturb,
    release_args,
    save_like_release,
)
from tests.retriever.neural.support import (  # noqa: E402
    tiny_audio_config,
    tiny_config,
    tiny_text_config,
    tiny_tokenizer,
    tone,
)

TERMS = ["contrastive learning", "bleu score", "speech model", "the model"]
WINDOWS = [2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer(TERMS)


def _release(
    tokenizer: Any, *, use_maxsim: bool = True, pooling: str = "attentive", sparse: float = 0.0
) -> tuple[ReleaseRetriever, ReleaseTextEncoder]:
    torch.manual_seed(99)  # other base weights than ours: they must come from the file
    retriever = ReleaseRetriever(
        tiny_audio_config(), 32, 128, WINDOWS, use_maxsim=use_maxsim, pooling_type=pooling
    )
    text = ReleaseTextEncoder(tiny_text_config(len(tokenizer)), 128, sparse_weight=sparse)
    perturb(retriever, text, seed=5)
    return retriever.eval(), text.eval()


def _ours(tokenizer: Any, **config: Any) -> RetrieverModels:
    torch.manual_seed(1)
    return build_models(
        tiny_config(lora_preset="release", **config),
        audio_config=tiny_audio_config(),
        text_config=tiny_text_config(len(tokenizer)),
        tokenizer=tokenizer,
    )


def _mels() -> list[torch.Tensor]:
    return LogMelFrontend()([tone(300, 2.88), tone(700, 1.1, seed=2)])


def _assert_same_vectors(
    ours: RetrieverModels, retriever: ReleaseRetriever, text: ReleaseTextEncoder, tokenizer: Any
) -> None:
    with torch.inference_mode():
        for mel in _mels():
            lens = torch.tensor([mel.shape[-1]])
            want = retriever(mel, lens)[0]
            got = ours.speech(*flatten_features([mel]))
            vectors = got.vectors[0] if got.valid is None else got.vectors[0][got.valid[0]]
            torch.testing.assert_close(vectors.reshape(want.shape), want, atol=1e-5, rtol=1e-4)
        ids, mask = tokenize(tokenizer, TERMS, 64)
        want_terms = text(ids, mask)
    got_terms = encode_terms(ours.text, tokenizer, TERMS, 64)
    torch.testing.assert_close(got_terms, want_terms, atol=1e-5, rtol=1e-4)


def test_release_maxsim_checkpoint_with_trainer_state_loads_and_matches(
    tmp_path: Path, tokenizer: Any
) -> None:
    retriever, text = _release(tokenizer)
    path = tmp_path / "hn1024.pt"
    saved = save_like_release(path, retriever, text, release_args())
    # The file is the release's: full state dicts under the trainer's key names.
    assert any(
        k.startswith("audio_encoder.base_model.model.layers.0.self_attn.q_proj.lora_A.default")
        for k in saved["model_state_dict"]
    )
    assert "logit_scale" in saved["model_state_dict"]
    ours = _ours(tokenizer, checkpoint=str(path))
    _assert_same_vectors(ours, retriever, text, tokenizer)

    state = read_trainer_state(path)
    assert state["global_step"] == 320 and state["epoch"] == 1
    assert state["args"]["maxsim_windows"] == WINDOWS and state["args"]["lora_rank"] == 128
    groups = state["optimizer_state_dict"]["param_groups"]
    assert groups[0]["betas"] == (0.9, 0.999) and groups[0]["name"] == "all"
    assert len(state["optimizer_state_dict"]["state"]) > 0  # AdamW moments were written
    assert state["scheduler_state_dict"]["last_epoch"] == 1
    assert state["best_metric_key"] == "eval_dev/recall@10_gs10000"


def test_release_attentive_pooling_checkpoint_matches(tmp_path: Path, tokenizer: Any) -> None:
    retriever, text = _release(tokenizer, use_maxsim=False, pooling="attentive")
    save_like_release(tmp_path / "att.pt", retriever, text, release_args(use_maxsim=False))
    assert "pooler.attention.0.weight" in retriever.state_dict()
    ours = _ours(tokenizer, pooling="attention", checkpoint=str(tmp_path / "att.pt"))
    _assert_same_vectors(ours, retriever, text, tokenizer)


def test_release_transformer_pooler_is_named_not_half_loaded(
    tmp_path: Path, tokenizer: Any
) -> None:
    retriever, text = _release(tokenizer, use_maxsim=False, pooling="transformer")
    save_like_release(tmp_path / "tr.pt", retriever, text, release_args(use_maxsim=False))
    with pytest.raises(CheckpointError, match="transformer pooler"):
        _ours(tokenizer, pooling="attention", checkpoint=str(tmp_path / "tr.pt"))


def test_dense_plus_sparse_terms_match_the_release_index_builder(
    tmp_path: Path, tokenizer: Any
) -> None:
    # Trained dense (as hn1024): the sparse head comes from the BGE-M3 directory.
    retriever, dense_text = _release(tokenizer)
    save_like_release(tmp_path / "hn.pt", retriever, dense_text, release_args())
    serving_text = ReleaseTextEncoder(tiny_text_config(len(tokenizer)), 128, sparse_weight=0.7)
    serving_text.load_state_dict(dense_text.state_dict(), strict=False)
    bge_dir = tmp_path / "bge-m3"
    bge_dir.mkdir()
    torch.save(serving_text.sparse_linear.state_dict(), bge_dir / "sparse_linear.pt")
    ours = _ours(
        tokenizer, checkpoint=str(tmp_path / "hn.pt"), sparse_weight=0.7, text_model=str(bge_dir)
    )
    _assert_same_vectors(ours, retriever, serving_text.eval(), tokenizer)
    dense = encode_terms(
        _ours(tokenizer, checkpoint=str(tmp_path / "hn.pt")).text, tokenizer, TERMS, 64
    )
    mixed = encode_terms(ours.text, tokenizer, TERMS, 64)
    assert not torch.allclose(dense, mixed, atol=1e-3)  # the mix changes the vectors
    # Without the head anywhere, the error says where to get it.
    with pytest.raises(ModelLoadError, match="sparse_linear.pt"):
        _ours(
            tokenizer,
            checkpoint=str(tmp_path / "hn.pt"),
            sparse_weight=0.7,
            text_model=str(tmp_path / "nowhere"),
        )

    # Trained with the sparse head: it comes from the file.
    retriever2, sparse_text = _release(tokenizer, sparse=0.7)
    save_like_release(tmp_path / "sp.pt", retriever2, sparse_text, release_args(sparse_weight=0.7))
    ours2 = _ours(tokenizer, checkpoint=str(tmp_path / "sp.pt"), sparse_weight=0.7)
    _assert_same_vectors(ours2, retriever2, sparse_text, tokenizer)
    with pytest.raises(CheckpointError, match="sparse head"):
        _ours(tokenizer, checkpoint=str(tmp_path / "sp.pt"))


def test_trainer_state_reader_allows_trainer_objects_and_names_others(
    tmp_path: Path, tokenizer: Any
) -> None:
    retriever, text = _release(tokenizer)
    # A namespace (not vars()) holding a Path: harmless globals, allowlisted.
    save_like_release(
        tmp_path / "ns.pt",
        retriever,
        text,
        release_args(),
        extra={"args": argparse.Namespace(save_path=Path("/x/y.pt"), lora_rank=128)},
    )
    state = read_trainer_state(tmp_path / "ns.pt")
    assert state["args"] == {"save_path": Path("/x/y.pt"), "lora_rank": 128}
    _ours(tokenizer, checkpoint=str(tmp_path / "ns.pt"))  # the weights load too

    save_like_release(
        tmp_path / "odd.pt",
        retriever,
        text,
        release_args(),
        extra={"odd": fractions.Fraction(1, 3)},
    )
    with pytest.raises(CheckpointError, match="fractions.Fraction"):
        read_trainer_state(tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="trust_checkpoint_pickle"):
        _ours(tokenizer, checkpoint=str(tmp_path / "odd.pt"))
    assert read_trainer_state(tmp_path / "odd.pt", trust_pickle=True)["global_step"] == 320
