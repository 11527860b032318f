"""Plain text and Markdown to text blocks.

Paragraphs (separated by blank lines) become blocks. Markdown headings become
heading blocks (the first level-1 heading the title); list items and table
cells become blocks of their own so that a phrase never runs from one into the
next; code, link targets, images' addresses and markup characters are dropped.
"""

from __future__ import annotations

import re

from glossary.extract.model import BlockKind, TextBlock, non_empty

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# A short first line of a text file reads as its title.
_TITLE_MAX_CHARS = 200

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_ATX_HEADING = re.compile(r"^[ \t]{0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_SETEXT_UNDERLINE = re.compile(r"^[ \t]{0,3}(=+|-+)[ \t]*$")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+")
_QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")
_REFERENCE_DEFINITION = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:[ \t]*\S+.*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\[[^\]]*\])")
_AUTOLINK = re.compile(r"<(?:https?|mailto):[^>]*>")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_CODE_SPAN = re.compile(r"`+([^`]*)`+")
_EMPHASIS = re.compile(r"(\*{1,3}|(?<!\w)_{1,3}|_{1,3}(?!\w))")


def text_blocks(text: str) -> tuple[TextBlock, ...]:
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n"))]
    blocks = [TextBlock(p) for p in paragraphs if p]
    if blocks and "\n" not in blocks[0].text and len(blocks[0].text) <= _TITLE_MAX_CHARS:
        blocks[0] = TextBlock(blocks[0].text, BlockKind.TITLE)
    return non_empty(blocks)


def markdown_blocks(text: str) -> tuple[TextBlock, ...]:
    text = _FRONT_MATTER.sub("", text.replace("\r\n", "\n"), count=1)
    blocks: list[TextBlock] = []
    paragraph: list[str] = []
    title_seen = False
    fence: str | None = None

    def flush() -> None:
        if paragraph:
            blocks.append(TextBlock(_inline("\n".join(paragraph))))
            paragraph.clear()

    def heading(level: int, raw: str) -> None:
        nonlocal title_seen
        flush()
        kind = BlockKind.HEADING
        if level == 1 and not title_seen:
            kind, title_seen = BlockKind.TITLE, True
        blocks.append(TextBlock(_inline(raw), kind))

    for line in text.split("\n"):
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        if match := _FENCE.match(line):
            flush()
            fence = match.group(1)[:3]
            continue
        if not line.strip() or _REFERENCE_DEFINITION.match(line) or _TABLE_RULE.match(line):
            flush()
            continue
        if match := _ATX_HEADING.match(line):
            heading(len(match.group(1)), match.group(2))
            continue
        if paragraph and len(paragraph) == 1 and (match := _SETEXT_UNDERLINE.match(line)):
            raw = paragraph.pop()
            heading(1 if match.group(1).startswith("=") else 2, raw)
            continue
        line = _QUOTE.sub("", line)
        if _LIST_ITEM.match(line):
            flush()
            paragraph.append(_LIST_ITEM.sub("", line, count=1))
            flush()
            continue
        if "|" in line:
            flush()
            blocks.extend(TextBlock(_inline(cell)) for cell in line.split("|"))
            continue
        paragraph.append(line)
    flush()
    return non_empty(blocks)


def _inline(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _AUTOLINK.sub("", text)
    text = _CODE_SPAN.sub(r"\1", text)
    text = _TAG.sub("", text)
    return _EMPHASIS.sub("", text).strip()
