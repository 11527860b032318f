"""History limits and trim policies; block trimming keeps the prompt prefix stable."""

from __future__ import annotations

import pytest

from server.translator.history import History
from server.translator.params import HistoryParams, TrimPolicy


def _turn(i: int) -> dict[str, object]:
    return {"role": "user", "content": [{"type": "text", "text": str(i)}]}


def _ids(history: History) -> list[str]:
    return [user["content"][0]["text"] for user, _ in history]  # type: ignore[index]


@pytest.mark.parametrize(
    ("lm", "limit", "block"), [(1, 30, 10), (2, 30, 10), (3, 20, 6), (4, 20, 6)]
)
def test_reference_limits_by_lm(lm: int, limit: int, block: int) -> None:
    params = HistoryParams()
    assert (params.limit(lm), params.block_size(lm)) == (limit, block)


def test_step_policy_drops_one_per_step() -> None:
    history = History(HistoryParams(policy=TrimPolicy.STEP, max_chunks=3), lm=1)
    dropped = [history.append(_turn(i), f"a{i}") for i in range(6)]
    assert dropped == [0, 0, 0, 1, 1, 1]
    assert _ids(history) == ["3", "4", "5"]


def test_block_policy_drops_a_block_when_over_the_limit() -> None:
    history = History(HistoryParams(policy=TrimPolicy.BLOCK, max_chunks=4, block=2), lm=1)
    sizes = []
    for i in range(9):
        history.append(_turn(i), f"a{i}")
        sizes.append(len(history))
    assert sizes == [1, 2, 3, 4, 3, 4, 3, 4, 3]
    assert _ids(history) == ["6", "7", "8"]


def test_zero_history() -> None:
    history = History(HistoryParams(max_chunks=0), lm=1)
    history.append(_turn(0), "a")
    assert len(history) == 0


def _simulated_reuse(policy: TrimPolicy, steps: int, limit: int) -> float:
    """Fraction of prompt turns that extend the previous prompt (a prefix-cache model)."""
    history = History(HistoryParams(policy=policy, max_chunks=limit), lm=1)
    previous: list[str] = []
    reused = total = 0
    for i in range(steps):
        prompt = [*(f"{u['content'][0]['text']}/{a}" for u, a in history), f"{i}"]  # type: ignore[index]
        common = 0
        for old, new in zip(previous, prompt, strict=False):
            if old != new:
                break
            common += 1
        reused += common
        total += len(prompt)
        previous = prompt[:-1] + [f"{i}/a{i}"]
        history.append(_turn(i), f"a{i}")
    return reused / total


def test_block_trimming_reuses_more_prefix_than_step_trimming() -> None:
    block = _simulated_reuse(TrimPolicy.BLOCK, steps=120, limit=30)
    step = _simulated_reuse(TrimPolicy.STEP, steps=120, limit=30)
    assert block > 0.8
    assert step < 0.4
