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
from hypothesis import strategies as st

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


# -- hostile strings, shared by the fuzz targets --------------------------------------------

# What broke the gateway once (issue 22): lone surrogates (JSON escapes them, so they reach
# the server), characters of 2 to 4 UTF-8 bytes (a close reason cut in characters, not
# bytes, overflowed the 123-byte limit), and digits that are not ASCII ("²".isdigit()).
TRICKY_CHARACTERS = ["\ud800", "\udfff", "\udc80", "é", "€", "語", "😀", "²", "¹", "³", "٣", "\x00"]


def hostile_text(max_size: int = 80) -> st.SearchStrategy[str]:
    """Any Unicode text, surrogates included, with runs of multi-byte characters."""
    char = st.one_of(
        st.characters(),
        st.characters(categories=["Cs"]),
        st.sampled_from(TRICKY_CHARACTERS),
    )
    return st.one_of(
        st.text(char, max_size=max_size),
        # Runs whose UTF-8 length straddles the close-frame limit (123 bytes).
        st.tuples(st.sampled_from(["é", "€", "😀", "a"]), st.integers(20, 70)).map(
            lambda run: run[0] * run[1]
        ),
    )


def latin1_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Header values: HTTP carries bytes, which servers decode as Latin-1."""
    char = st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
        st.sampled_from(["²", "¹", "³", '"', "W", "/", "*", ",", "0", "1", "9"]),
    )
    return st.text(char, max_size=max_size)
