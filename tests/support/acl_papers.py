"""Paper-like documents built from the ACL 60/60 dev talks, and the RASST paper glossaries.

The talks' papers themselves are not in ``shared/data``; what is there is the
English text of each talk (``dev.en-de.jsonl``) and the glossary the RASST
authors extracted automatically from each paper
(``glossaries/rasst_acl_paper_extracted.tsv``, a ``talk_id`` column). A
"paper" here is the talk's text laid out like one: an abstract (the first
segments), then sections of paragraphs under generic headings. Gold terms are
the paper-glossary terms of that talk that occur in its text (a term like
"out-of-vocabulary (OOV)" counts when either form occurs); the others cannot be
found in the text by any extractor.

Used by tests/glossary/test_extract*.py and bench/glossary_extract.py.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SEGMENTS = DATA / "acl6060" / "dev.en-de.jsonl"
PAPER_GLOSSARY = DATA / "glossaries" / "rasst_acl_paper_extracted.tsv"
_HEADINGS = ("Introduction", "Method", "Experiments", "Results", "Conclusion")
_ABSTRACT_SEGMENTS = 3
_PARAGRAPH_SEGMENTS = 4
_WORDS = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Paper:
    talk_id: str
    abstract: str
    # (heading, paragraphs)
    sections: tuple[tuple[str, tuple[str, ...]], ...]

    def text(self) -> str:
        parts = ["Abstract", self.abstract]
        for heading, paragraphs in self.sections:
            parts.append(heading)
            parts.extend(paragraphs)
        return "\n\n".join(parts) + "\n"

    def markdown(self) -> str:
        parts = ["## Abstract", self.abstract]
        for heading, paragraphs in self.sections:
            parts.append(f"## {heading}")
            parts.extend(paragraphs)
        return "\n\n".join(parts) + "\n"

    def html(self) -> str:
        from html import escape

        parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Talk</title>"]
        parts.append("<style>body { font-family: serif }</style></head><body>")
        parts.append(f"<h2>Abstract</h2><p>{escape(self.abstract)}</p>")
        for heading, paragraphs in self.sections:
            parts.append(f"<h2>{escape(heading)}</h2>")
            parts.extend(f"<p>{escape(p)}</p>" for p in paragraphs)
        parts.append("<script>const tracker = 'Quantum Flux Capacitor';</script></body></html>")
        return "".join(parts)

    def pdf(self) -> bytes:
        from fpdf import FPDF

        pdf = FPDF(format="A4")
        pdf.set_margins(20, 20, 20)
        pdf.set_auto_page_break(True, margin=20)
        pdf.add_page()

        def write(text: str, size: int, style: str = "") -> None:
            pdf.set_font("Helvetica", style, size)
            # The core fonts are Latin-1; the talks are English with a few names.
            pdf.multi_cell(0, size * 0.5, text.encode("latin-1", "replace").decode("latin-1"))
            pdf.ln(2)

        write("Abstract", 12, "B")
        write(self.abstract, 10)
        for heading, paragraphs in self.sections:
            write(heading, 12, "B")
            for paragraph in paragraphs:
                write(paragraph, 10)
        return bytes(pdf.output())

    def pptx(self) -> bytes:
        from pptx import Presentation

        deck = Presentation()
        layout = deck.slide_layouts[1]  # title and content
        slides = [("Abstract", (self.abstract,))] + [(h, ps) for h, ps in self.sections]
        for heading, paragraphs in slides:
            for start in range(0, len(paragraphs), 2):
                slide = deck.slides.add_slide(layout)
                slide.shapes.title.text = heading
                body = slide.placeholders[1].text_frame
                body.text = paragraphs[start]
                for paragraph in paragraphs[start + 1 : start + 2]:
                    body.add_paragraph().text = paragraph
        out = io.BytesIO()
        deck.save(out)
        return out.getvalue()


@dataclass(frozen=True)
class GoldTerm:
    term: str
    # The forms that count as finding it: the term, and for "long form (SF)" each part.
    forms: tuple[str, ...]


@cache
def talk_segments() -> dict[str, tuple[str, ...]]:
    talks: dict[str, list[str]] = {}
    with SEGMENTS.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            talks.setdefault(row["talk_id"], []).append(row["en"])
    return {talk: tuple(segments) for talk, segments in talks.items()}


def talk_ids() -> list[str]:
    return sorted(talk_segments())


def paper(talk_id: str) -> Paper:
    segments = talk_segments()[talk_id]
    abstract = " ".join(segments[:_ABSTRACT_SEGMENTS])
    body = segments[_ABSTRACT_SEGMENTS:]
    paragraphs = [
        " ".join(body[i : i + _PARAGRAPH_SEGMENTS])
        for i in range(0, len(body), _PARAGRAPH_SEGMENTS)
    ]
    per_section = -(-len(paragraphs) // len(_HEADINGS))
    sections = tuple(
        (heading, tuple(paragraphs[i * per_section : (i + 1) * per_section]))
        for i, heading in enumerate(_HEADINGS)
        if paragraphs[i * per_section : (i + 1) * per_section]
    )
    return Paper(talk_id, abstract, sections)


@cache
def _paper_glossary() -> dict[str, tuple[str, ...]]:
    terms: dict[str, list[str]] = {}
    with PAPER_GLOSSARY.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            terms.setdefault(row["talk_id"], []).append(row["en"])
    return {talk: tuple(dict.fromkeys(t)) for talk, t in terms.items()}


def paper_glossary(talk_id: str) -> tuple[str, ...]:
    """Every term the RASST authors extracted from the talk's paper."""
    return _paper_glossary()[talk_id]


def gold_terms(talk_id: str) -> list[GoldTerm]:
    """The paper-glossary terms of the talk that occur in its text."""
    text = " " + " ".join(match_key_words(" ".join(talk_segments()[talk_id]))) + " "
    gold: list[GoldTerm] = []
    seen: set[str] = set()
    for term in paper_glossary(talk_id):
        forms = _forms(term)
        if any(f" {' '.join(match_key_words(f))} " in text for f in forms):
            key = match_key(term)
            if key not in seen:
                seen.add(key)
                gold.append(GoldTerm(term, forms))
    return gold


def _forms(term: str) -> tuple[str, ...]:
    match = re.match(r"^(.*?)\s*\(([^()]+)\)\s*$", term)
    if match:
        return (term, match.group(1), match.group(2))
    return (term,)


def match_key_words(text: str) -> list[str]:
    """Lower-case words with a plural -s removed: how gold and found terms are compared."""
    words = []
    for word in _WORDS.findall(text.lower()):
        if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
        words.append(word)
    return words


def match_key(term: str) -> str:
    """ "Pre-training", "pretraining" and "pre training" compare equal; so do plurals."""
    return "".join(match_key_words(term))


def frequency_baseline(text: str, n: int) -> list[str]:
    """The trivial extractor: the most frequent non-stopword words and word pairs."""
    from glossary.extract.stopwords import STOPWORDS

    words = re.findall(r"[^\W_]+(?:-[^\W_]+)*", text.lower())
    counts: dict[str, int] = {}
    for i, word in enumerate(words):
        if word in STOPWORDS or word.isdigit():
            continue
        counts[word] = counts.get(word, 0) + 1
        following = words[i + 1] if i + 1 < len(words) else None
        if following and following not in STOPWORDS and not following.isdigit():
            pair = f"{word} {following}"
            counts[pair] = counts.get(pair, 0) + 1
    return [term for term, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:n]


def recall_at(found: list[str], gold: list[GoldTerm], n: int) -> float:
    """Share of gold terms matched by one of the first ``n`` found terms."""
    if not gold:
        return 0.0
    top = {match_key(term) for term in found[:n]}
    hits = sum(1 for g in gold if any(match_key(f) in top for f in g.forms))
    return hits / len(gold)
