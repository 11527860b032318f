"""Speech tower: flat batched encoder outputs, multi-scale pooling, MaxSim, attention pooling."""

from __future__ import annotations

from tests.retriever.neural.support import require_neural_stack

require_neural_stack()

import itertools  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from retriever.neural.features import LogMelFrontend, n_mel_frames  # noqa: E402
from retriever.neural.models import build_models  # noqa: E402
from retriever.neural.speech import (  # noqa: E402
    AttentionPooling,
    flatten_features,
    maxsim_scores,
    multiscale_pool,
    output_lengths,
)
from tests.retriever.neural.support import tiny_build_kwargs, tiny_config, tone  # noqa: E402

SECONDS = (1.92, 1.0, 0.31, 1.5)


@pytest.fixture(scope="module")
def maxsim_models():  # type: ignore[no-untyped-def]
    return build_models(tiny_config(pooling="maxsim"), **tiny_build_kwargs())


@pytest.fixture(scope="module")
def mels():  # type: ignore[no-untyped-def]
    return LogMelFrontend()([tone(200 + 300 * i, s, seed=i) for i, s in enumerate(SECONDS)])


def test_features_have_128_bins_and_no_padding_to_30s(mels) -> None:  # type: ignore[no-untyped-def]
    assert [tuple(m.shape) for m in mels] == [(128, n_mel_frames(int(s * 16000))) for s in SECONDS]


def test_batched_flat_output_matches_one_input_at_a_time(maxsim_models, mels) -> None:  # type: ignore[no-untyped-def]
    speech = maxsim_models.speech
    features, lens = flatten_features(mels)
    with torch.inference_mode():
        hidden, mask, lengths = speech.frames(features, lens)
        expected = output_lengths(lens, speech.n_window)
        assert hidden.shape == (len(mels), int(expected.max()), 48)
        assert mask.sum(dim=1).tolist() == expected.tolist() == lengths.tolist()
        assert expected[0] == 25  # 1.92 s → 25 frames (≈ 12.5 per second)
        for i, mel in enumerate(mels):
            alone, _, n = speech.frames(mel, torch.tensor([mel.shape[1]]))
            torch.testing.assert_close(
                hidden[i, : int(n[0])], alone[0, : int(n[0])], atol=1e-5, rtol=1e-4
            )
            # Padding after an input's frames is zero, never another input's frames.
            assert torch.count_nonzero(hidden[i, int(n[0]) :]) == 0


def test_maxsim_pooled_outputs_do_not_depend_on_the_batch(maxsim_models, mels) -> None:  # type: ignore[no-untyped-def]
    features, lens = flatten_features(mels)
    with torch.inference_mode():
        batched = maxsim_models.speech(features, lens)
        assert batched.valid is not None
        for i, mel in enumerate(mels):
            alone = maxsim_models.speech(mel, torch.tensor([mel.shape[1]]))
            assert alone.valid is not None
            got = batched.vectors[i][batched.valid[i]]
            want = alone.vectors[0][alone.valid[0]]
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def _brute_force_windows(
    frames: torch.Tensor, n: int, windows: tuple[int, ...], stride: int
) -> list[torch.Tensor]:
    out = []
    for w in windows:
        if w >= n:
            out.append(frames[:n].mean(dim=0))
            continue
        for start in range(0, n - w + 1, stride):
            out.append(frames[start : start + w].mean(dim=0))
    return out


def test_multiscale_pool_equals_brute_force_means() -> None:
    torch.manual_seed(0)
    frames = torch.randn(3, 25, 8)
    lengths = torch.tensor([25, 11, 3])
    windows, stride = (2, 3, 5, 12, 24), 2
    means, valid = multiscale_pool(frames, lengths, windows, stride)
    for b in range(3):
        want = torch.stack(_brute_force_windows(frames[b], int(lengths[b]), windows, stride))
        torch.testing.assert_close(means[b][valid[b]], want, atol=1e-5, rtol=1e-5)


def test_maxsim_equals_brute_force() -> None:
    torch.manual_seed(1)
    sub = torch.nn.functional.normalize(torch.randn(4, 9, 16), dim=-1)
    valid = torch.rand(4, 9) > 0.3
    valid[:, 0] = True
    terms = torch.nn.functional.normalize(torch.randn(7, 16), dim=-1)
    got = maxsim_scores(sub, valid, terms)
    for b, n in itertools.product(range(4), range(7)):
        best = max(float(sub[b, s] @ terms[n]) for s in range(9) if valid[b, s])
        assert got[b, n].item() == pytest.approx(best, abs=1e-6)


class TestAttentionPooling:
    def setup_method(self) -> None:
        torch.manual_seed(2)
        self.pool = AttentionPooling(8).eval()
        self.frames = torch.randn(2, 10, 8)
        self.mask = torch.zeros(2, 10, dtype=torch.bool)
        self.mask[0, :10] = True
        self.mask[1, :6] = True

    def test_masked_frames_are_ignored_even_when_not_finite(self) -> None:
        base = self.pool(self.frames, self.mask)
        noisy = self.frames.clone()
        noisy[1, 6:] = torch.tensor(float("inf"))
        noisy[1, 7] = torch.tensor(float("nan"))
        torch.testing.assert_close(self.pool(noisy, self.mask), base)

    def test_equals_the_unpadded_computation(self) -> None:
        alone = self.pool(self.frames[1:, :6], self.mask[1:, :6])
        torch.testing.assert_close(self.pool(self.frames, self.mask)[1:], alone)

    def test_permuting_padding_or_frames_changes_nothing(self) -> None:
        base = self.pool(self.frames, self.mask)
        perm = torch.cat([torch.randperm(6), 6 + torch.randperm(4)])
        torch.testing.assert_close(
            self.pool(self.frames[:, perm], self.mask[:, perm]), base, atol=1e-6, rtol=1e-5
        )
        # Padding moved to the front (a different position of the same frames).
        order = torch.cat([torch.arange(6, 10), torch.arange(6)])
        torch.testing.assert_close(
            self.pool(self.frames[1:, order], self.mask[1:, order]), base[1:], atol=1e-6, rtol=1e-5
        )

    def test_weights_are_a_convex_combination(self) -> None:
        out = self.pool(self.frames, self.mask)
        lo = self.frames[1, :6].min(dim=0).values
        hi = self.frames[1, :6].max(dim=0).values
        assert torch.all(out[1] >= lo - 1e-6) and torch.all(out[1] <= hi + 1e-6)


def test_attention_tower_gives_one_unit_vector_per_window(mels) -> None:  # type: ignore[no-untyped-def]
    models = build_models(tiny_config(pooling="attention"), **tiny_build_kwargs())
    features, lens = flatten_features(mels)
    with torch.inference_mode():
        out = models.speech(features, lens)
    assert out.valid is None and out.vectors.shape == (len(mels), 32)
    torch.testing.assert_close(out.vectors.norm(dim=-1), torch.ones(len(mels)))
