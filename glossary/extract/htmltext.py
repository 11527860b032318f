"""HTML to text blocks with the standard library's tokenizer (no DOM, linear time).

Scripts, styles and other non-text content are skipped; block-level elements
end a block; ``<title>`` and ``<h1>`` give the title, ``<h2>``–``<h6>``
headings. Character references are decoded by the tokenizer.
"""

from __future__ import annotations

from html.parser import HTMLParser

from glossary.extract.model import BlockKind, TextBlock, non_empty


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Content that is not prose (its text would become candidate terms).
_SKIPPED = frozenset(
    ["script", "style", "noscript", "template", "svg", "math", "head", "iframe", "object", "canvas"]
)
_HEADINGS = {"h1": BlockKind.TITLE, **{f"h{i}": BlockKind.HEADING for i in range(2, 7)}}
_BLOCKS = _words("""address article aside blockquote br caption dd details dialog div dl dt fieldset
    figcaption figure footer form header hr li main nav ol p pre section summary table tbody
    td tfoot th thead tr ul""")
_VOID = _words("area base br col embed hr img input link meta param source track wbr")


class _BlockCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[TextBlock] = []
        self.title: str | None = None
        self._parts: list[str] = []
        self._kind = BlockKind.BODY
        # Open skipped elements (a stack, since they may nest: <svg><style>).
        self._skipping: list[str] = []
        self._in_title = False
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self._skipping_body():
            self._in_title = True
            return
        if tag == "body" and "head" in self._skipping:
            # An unclosed <head> ends where the body starts.
            del self._skipping[self._skipping.index("head") :]
        if tag in _SKIPPED and tag not in _VOID:
            self._skipping.append(tag)
            return
        if tag in _HEADINGS:
            self._flush()
            self._kind = _HEADINGS[tag]
        elif tag in _BLOCKS:
            self._flush()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if self._skipping:
            if tag in self._skipping:
                # Close it and anything left open inside it.
                del self._skipping[self._skipping.index(tag) :]
            return
        if tag in _HEADINGS or tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
        elif not self._skipping:
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        self._flush()
        title = " ".join("".join(self._title_parts).split())
        self.title = title or None

    def _skipping_body(self) -> bool:
        # <title> lives in <head>, which is otherwise skipped.
        return any(tag != "head" for tag in self._skipping)

    def _flush(self) -> None:
        text = " ".join("".join(self._parts).split())
        self._parts.clear()
        if text:
            self.blocks.append(TextBlock(text, self._kind))
        self._kind = BlockKind.BODY


def html_blocks(text: str) -> tuple[TextBlock, ...]:
    collector = _BlockCollector()
    collector.feed(text)
    collector.close()
    blocks = collector.blocks
    if collector.title and not any(b.kind is BlockKind.TITLE for b in blocks):
        blocks.insert(0, TextBlock(collector.title, BlockKind.TITLE))
    return non_empty(blocks)
