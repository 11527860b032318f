""".env.example lists every setting with its real default, so it cannot fall behind
server/settings.py."""

from __future__ import annotations

import re

import pytest

from server.settings import Settings
from tests.deploy.support import REPO

EXAMPLE = REPO / ".env.example"
# Shown with the container's value rather than the default (which depends on $HOME).
SHOWN_AS_CONTAINER_VALUE = {"data_dir"}


def _assignments() -> dict[str, tuple[str, bool]]:
    """RASST_* name -> (value, commented out)."""
    found: dict[str, tuple[str, bool]] = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"(# )?(RASST_[A-Z0-9_]+)=(.*)", line)
        if match:
            assert match[2] not in found, f"{match[2]} listed twice"
            found[match[2]] = (match[3], bool(match[1]))
    return found


def test_every_setting_is_listed() -> None:
    listed = set(_assignments())
    expected = {f"RASST_{name.upper()}" for name in Settings.model_fields}
    assert expected - listed == set(), "settings missing from .env.example"
    assert listed - expected == set(), ".env.example lists settings that do not exist"


def test_commented_lines_show_the_real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    for env_name, (value, commented) in _assignments().items():
        field = env_name.removeprefix("RASST_").lower()
        if not commented or not value or field in SHOWN_AS_CONTAINER_VALUE:
            continue
        monkeypatch.setenv(env_name, value)
        # Parsed exactly as the service parses its environment.
        assert getattr(Settings(), field) == getattr(defaults, field), env_name
        monkeypatch.delenv(env_name)


def test_uncommented_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for env_name, (value, commented) in _assignments().items():
        if not commented:
            monkeypatch.setenv(env_name, value)
    Settings()
