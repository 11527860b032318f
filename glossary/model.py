"""The glossary domain model shared by the store, the router and the retriever.

A glossary is a named, versioned set of entries; an entry is one source term
with one or more translations per target language. These types are what the
rest of the system consumes: the retriever indexes ``GlossarySnapshot``s and a
session reads translations from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class GlossaryEntry:
    source: str
    # language code -> translations, preferred first.
    targets: Mapping[str, tuple[str, ...]]
    note: str | None = None
    priority: int = 0

    def translation(self, lang: str) -> str | None:
        """The preferred translation into ``lang``, or None when there is none.

        A session asking for ``zh`` uses a glossary's ``zh-CN`` column (and the
        other way round) when there is no exact match: glossaries and clients
        rarely agree on regional subtags.
        """
        options = self.targets.get(lang)
        if options:
            return options[0]
        primary = lang.split("-", 1)[0].lower()
        for code, values in self.targets.items():
            if values and code.split("-", 1)[0].lower() == primary:
                return values[0]
        return None


@dataclass(frozen=True, slots=True)
class GlossarySnapshot:
    """One immutable version of a glossary, as sessions and indexes see it."""

    id: str
    version: int
    tenant: str
    name: str
    source_language: str
    entries: tuple[GlossaryEntry, ...] = field(default_factory=tuple)

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.version)
