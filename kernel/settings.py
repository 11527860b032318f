"""Settings pieces every package shares: the ``RASST_*`` environment and URL checks.

Each package reads its own settings class (``glossary.settings``, ``retriever.settings``);
the gateway's ``server.settings.Settings`` composes them into one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

RASST_ENV = SettingsConfigDict(env_prefix="RASST_", env_file=None, extra="ignore")


def http_url(value: str | None) -> str | None:
    """An http(s) base URL without its trailing slash, or None."""
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/") if value else value


# RASST_PRESET: "paper" is the release's serving behaviour (docs/paper-preset.md).
Preset = Literal["default", "paper"]


def apply_preset(settings: BaseSettings, table: Mapping[str, object]) -> None:
    """Set every field of ``table`` that was not set explicitly (an explicit variable wins)."""
    explicit = settings.model_fields_set
    for name, value in table.items():
        if name not in explicit:
            setattr(settings, name, value)
