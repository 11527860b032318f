"""How far a glossary's term index is, as the REST API reports it.

The glossary service stores terms; building their search index is the retriever's job,
in whatever process serves sessions. The gateway registers a lookup here
(``app.state.index_status``) so ``GET /v1/glossaries`` can say whether a glossary is
searchable yet without this package knowing who builds indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field


class IndexStatus(BaseModel):
    state: Literal["building", "ready", "failed", "not_loaded"] = Field(
        description="ready: the newest version is searchable; building: it is being "
        "indexed (an older version may be searched meanwhile); not_loaded: no session "
        "or upload on this server has asked for it yet."
    )
    version: int | None = Field(default=None, description="The version being indexed.")
    searchable_version: int | None = Field(
        default=None, description="The version sessions search now (None: none yet)."
    )
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    kind: str | None = Field(default=None, description="Index type: flat, hnsw, phone-trigram.")


IndexStatusFn = Callable[[str], IndexStatus | None]
