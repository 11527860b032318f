"""Glossary files read and written the way the gateway's upload reads them."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from glossary.model import GlossarySnapshot


def load_glossary(path: Path, name: str = "training") -> GlossarySnapshot:
    """Any upload format (CSV/TSV/JSON/TBX/TMX) parsed by the glossary service's own parser."""
    from glossary.formats import parse_glossary
    from glossary.formats.base import ParseOptions

    parsed = parse_glossary(path.read_bytes(), ParseOptions(), filename=path.name)
    return GlossarySnapshot(
        id=name,
        version=1,
        tenant="training",
        name=parsed.name or path.stem,
        source_language=parsed.source_language,
        entries=parsed.entries,
    )


def glossary_pairs(snapshot: GlossarySnapshot, lang: str) -> list[tuple[str, str]]:
    """``(source, preferred translation)`` for every entry that has one in ``lang``."""
    pairs = []
    for entry in snapshot.entries:
        target = entry.translation(lang)
        if target:
            pairs.append((entry.source, target))
    return pairs


def write_pairs_tsv(
    path: Path, pairs: Iterable[tuple[str, str]], lang: str, source_lang: str = "en"
) -> Path:
    """A two-language TSV (header: language codes) that the gateway's upload reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow([source_lang, lang])
        for source, target in pairs:
            writer.writerow([source, target])
    return path


def unique_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """One pair per source (case-insensitive), first wins, order kept."""
    seen: set[str] = set()
    out = []
    for source, target in pairs:
        key = " ".join(source.casefold().split())
        if key not in seen:
            seen.add(key)
            out.append((source, target))
    return out
