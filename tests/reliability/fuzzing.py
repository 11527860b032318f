"""Shared knobs of the fuzz tests (``test_fuzz_*.py``): how many inputs each target tries.

The default counts keep the fuzz tests within the CI budget, and CI runs them
derandomized: the same inputs on every run, so a red build is a change in the
code, not a new random draw. ``RASST_FUZZ_EXAMPLES=N`` is the long run: every
target tries N inputs (N per operation for the REST API), from a random seed,
and failing inputs are kept in the Hypothesis database for replay
(docs/reliability.md has the commands and the figures of a run).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_ENV = "RASST_FUZZ_EXAMPLES"


def long_run() -> bool:
    return bool(os.environ.get(_ENV, "").strip())


def fuzz_examples(ci_default: int) -> int:
    """Inputs per target: ``ci_default``, or ``RASST_FUZZ_EXAMPLES`` when set."""
    return int(os.environ[_ENV]) if long_run() else ci_default


def fuzz_settings(ci_default: int, **overrides: object) -> settings:
    """Hypothesis settings of one fuzz target.

    No per-example deadline unless given (network targets put a timeout on every
    receive instead, so a hang still fails).
    """
    options: dict[str, object] = {
        "max_examples": fuzz_examples(ci_default),
        "deadline": None,
        "derandomize": not long_run(),
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
        "print_blob": True,
    }
    options.update(overrides)
    return settings(**options)  # type: ignore[arg-type]
