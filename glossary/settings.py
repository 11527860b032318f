"""The glossary service's settings: its store, its limits, who may call it, the drafting LLM."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from kernel.settings import RASST_ENV, http_url


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "rasst"


class GlossarySettings(BaseSettings):
    model_config = RASST_ENV

    # Where the embedded default keeps its SQLite database and index cache.
    data_dir: Path = Field(default_factory=_default_data_dir)
    # SQLAlchemy URL of the glossary store; default: SQLite in data_dir.
    db_url: str | None = None

    # The OpenAI-compatible LLM: glossary drafts use it, and the gateway translates with it.
    # Without llm_url the service runs in caption mode.
    llm_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None

    # Auth: when enabled every REST and WebSocket call needs an API key.
    auth_enabled: bool = False
    # Bootstrap admin key (create tenants and keys); never logged.
    admin_key: str | None = None

    # Glossary limits
    glossary_max_file_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    glossary_max_entries: int = Field(default=100_000, ge=1)
    glossary_max_term_chars: int = Field(default=1024, ge=16)
    glossary_max_per_tenant: int = Field(default=1000, ge=1)

    @field_validator("llm_url")
    @classmethod
    def _llm_http_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.data_dir / 'rasst.db'}"
