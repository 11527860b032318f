"""Document readers of glossary drafts: every format, its structure, its limits, hostile files."""

from __future__ import annotations

import io
import zipfile
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glossary.extract import (
    BlockKind,
    DocumentFormat,
    ExtractionLimits,
    extract_keyphrases,
    read_document,
)
from glossary.extract.documents import UploadedDocument, read_documents
from kernel.errors import ErrorCode, RasstError
from tests.glossary.hostile_documents import (
    Hostile,
    hostile_documents,
    pptx_archive,
    simple_pdf,
    slide,
)
from tests.support.acl_papers import Paper, paper

TALK = "2022.acl-long.268"
# A sentence of the talk that every format must carry through intact.
SENTENCE = "the dataset that we have released and some models that we explored"


@pytest.fixture(scope="module")
def talk_paper() -> Paper:
    return paper(TALK)


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [
        ("paper.txt", DocumentFormat.TEXT),
        ("paper.md", DocumentFormat.MARKDOWN),
        ("paper.html", DocumentFormat.HTML),
        ("paper.pdf", DocumentFormat.PDF),
        ("slides.pptx", DocumentFormat.PPTX),
    ],
)
def test_every_format_reads_the_talk(talk_paper: Paper, filename: str, fmt: DocumentFormat) -> None:
    data = {
        DocumentFormat.TEXT: lambda: talk_paper.text().encode(),
        DocumentFormat.MARKDOWN: lambda: talk_paper.markdown().encode(),
        DocumentFormat.HTML: lambda: talk_paper.html().encode(),
        DocumentFormat.PDF: talk_paper.pdf,
        DocumentFormat.PPTX: talk_paper.pptx,
    }[fmt]()
    document = read_document(data, filename, ExtractionLimits())
    assert document.format is fmt
    flat = " ".join(document.text.split())
    assert SENTENCE in flat
    assert "Quantum Flux Capacitor" not in flat  # the HTML's script
    assert document.warnings == ()
    kinds = {b.kind for b in document.blocks}
    if fmt in (DocumentFormat.MARKDOWN, DocumentFormat.HTML, DocumentFormat.PPTX):
        assert BlockKind.HEADING in kinds
        assert any(
            b.text == "Introduction" for b in document.blocks if b.kind is not BlockKind.BODY
        )
    if fmt is DocumentFormat.PDF:
        assert document.pages == 3 and {b.page for b in document.blocks} == {1, 2, 3}
    if fmt is DocumentFormat.PPTX:
        assert document.pages == len({b.page for b in document.blocks}) >= 10


def test_the_content_decides_the_format_not_the_name(talk_paper: Paper) -> None:
    assert read_document(talk_paper.pdf(), "notes.txt", ExtractionLimits()).format == "pdf"
    html = read_document(talk_paper.html().encode(), "page.txt", ExtractionLimits())
    assert html.format == "html"
    assert read_document(talk_paper.pptx(), "deck", ExtractionLimits()).format == "pptx"


def test_pdf_title_from_metadata_and_words_split_at_line_ends() -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Sparsifying Transformer Models")
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    for text in (
        "We study representation pooling. The represen-\ntation is learned.",
        "A task-\noriented dialogue system.",
    ):
        pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
    document = read_document(bytes(pdf.output()), "paper.pdf", ExtractionLimits())
    assert document.blocks[0].kind is BlockKind.TITLE
    assert document.blocks[0].text == "Sparsifying Transformer Models"
    body = document.blocks[1].text
    # Joined where the joined word occurs elsewhere in the document; kept hyphenated otherwise.
    assert "The representation is learned" in body
    assert "task-oriented dialogue" in body


def test_slides_follow_the_presentation_order_with_titles_and_notes() -> None:
    from pptx import Presentation

    deck = Presentation()
    for title, body, notes in (
        ("Contrastive Learning", "first slide body", "notes about the InfoNCE loss"),
        ("Results", "second slide body", ""),
    ):
        page = deck.slides.add_slide(deck.slide_layouts[1])
        page.shapes.title.text = title
        page.placeholders[1].text = body
        if notes:
            page.notes_slide.notes_text_frame.text = notes
    order = deck.slides._sldIdLst  # show the second slide first
    order.insert(0, order[1])
    out = io.BytesIO()
    deck.save(out)
    document = read_document(out.getvalue(), "deck.pptx", ExtractionLimits())
    texts = [(b.text, b.kind, b.page) for b in document.blocks]
    assert texts == [
        ("Results", BlockKind.TITLE, 1),
        ("second slide body", BlockKind.BODY, 1),
        ("Contrastive Learning", BlockKind.HEADING, 2),
        ("first slide body", BlockKind.BODY, 2),
        ("notes about the InfoNCE loss", BlockKind.BODY, 2),
    ]


def test_markdown_drops_code_links_and_markup() -> None:
    text = (
        "---\ntitle: x\n---\n# Retrieval-Augmented Generation\n\n"
        "We use **dense retrieval** with [FAISS](https://faiss.ai) and `top-k` search.\n\n"
        "```python\nimport secret_module\n```\n\n- item one\n- item two\n\n"
        "| metric | value |\n|---|---|\n| recall | 0.9 |\n"
    )
    document = read_document(text.encode(), "notes.md", ExtractionLimits())
    assert document.blocks[0] == document.blocks[0].__class__(
        "Retrieval-Augmented Generation", BlockKind.TITLE
    )
    flat = document.text
    assert "We use dense retrieval with FAISS and top-k search." in flat
    assert "secret_module" not in flat and "https" not in flat and "title: x" not in flat
    assert "item one" in flat and "recall" in flat


def test_html_declared_charset_and_entities() -> None:
    page = (
        "<html><head><meta charset='windows-1252'><title>Gr\xf6\xdfe</title></head>"
        "<body><p>Caf\xe9 &amp; na&iuml;ve Bayes</p></body></html>"
    ).encode("cp1252")
    document = read_document(page, "page.html", ExtractionLimits())
    assert [b.text for b in document.blocks] == ["Größe", "Café & naïve Bayes"]


@pytest.mark.parametrize("hostile", hostile_documents(), ids=lambda h: h.filename)
def test_hostile_documents_are_refused_with_a_stable_code(hostile: Hostile) -> None:
    with pytest.raises(RasstError) as info:
        read_document(hostile.data, hostile.filename, ExtractionLimits())
    assert info.value.code is hostile.code, info.value.message
    assert info.value.detail["reason"] in hostile.reasons
    assert info.value.detail["file"] == hostile.filename
    assert 400 <= info.value.http_status < 500


def test_archive_entry_and_size_limits() -> None:
    many = pptx_archive(slide("x"), extra={f"ppt/media/{i}.bin": b"" for i in range(20)})
    with pytest.raises(RasstError) as info:
        read_document(many, "many.pptx", ExtractionLimits(max_zip_entries=10))
    assert info.value.code is ErrorCode.LIMIT_EXCEEDED and "entries" in info.value.message
    with pytest.raises(RasstError) as info:
        read_document(simple_pdf(), "big.pdf", ExtractionLimits(max_file_bytes=256))
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE


def test_archive_whose_directory_lies_about_an_entry_is_damaged_not_a_crash() -> None:
    good = pptx_archive(slide("honest text " * 100))
    size = zipfile.ZipFile(io.BytesIO(good)).getinfo("ppt/slides/slide1.xml").file_size
    # The slide's central-directory record is the last one; its uncompressed size is at +24.
    record = good.rfind(b"PK\x01\x02")
    lying = good[: record + 24] + (size // 2).to_bytes(4, "little") + good[record + 28 :]
    with pytest.raises(RasstError) as caught:
        read_document(lying, "lying.pptx", ExtractionLimits())
    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert caught.value.detail["reason"] == "malformed_archive"


def test_reading_stops_at_the_time_budget_and_the_text_budget(talk_paper: Paper) -> None:
    spent = read_document(talk_paper.pdf(), "paper.pdf", ExtractionLimits(time_budget_seconds=0))
    assert spent.blocks == () and spent.warnings[0].code is ErrorCode.LIMIT_EXCEEDED
    assert "reading budget" in spent.warnings[0].message

    documents = read_documents(
        [
            UploadedDocument("a.txt", talk_paper.text().encode()),
            UploadedDocument("b.txt", talk_paper.text().encode()),
        ],
        ExtractionLimits(max_text_chars=15_000),
    )
    assert documents[0].warnings == ()
    assert documents[1].characters < 5_000
    assert documents[1].warnings[0].code is ErrorCode.LIMIT_EXCEEDED


def test_too_many_files_in_one_request() -> None:
    uploads = [UploadedDocument(f"{i}.txt", b"text") for i in range(3)]
    with pytest.raises(RasstError) as info:
        read_documents(uploads, ExtractionLimits(max_files=2))
    assert info.value.code is ErrorCode.LIMIT_EXCEEDED


_NAMES = st.sampled_from(["a.txt", "a.md", "a.html", "a.pdf", "a.pptx", "noextension"])


def _read_or_refuse(data: bytes, name: str) -> None:
    """Any input is read (and ranked) or refused with a client error: never a crash."""
    try:
        document = read_document(data, name, ExtractionLimits(time_budget_seconds=5))
    except RasstError as exc:
        assert 400 <= exc.http_status < 500, exc.message
        return
    extract_keyphrases([document])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.binary(max_size=4096), name=_NAMES)
def test_any_bytes_are_read_or_refused(data: bytes, name: str) -> None:
    _read_or_refuse(data, name)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(text=st.text(max_size=2000), name=_NAMES)
def test_any_text_is_read_or_refused(text: str, name: str) -> None:
    _read_or_refuse(text.encode("utf-8", "surrogatepass"), name)


@cache
def _valid_samples() -> tuple[tuple[str, bytes], ...]:
    from pptx import Presentation

    deck = Presentation()
    page = deck.slides.add_slide(deck.slide_layouts[1])
    page.shapes.title.text = "Contrastive Learning"
    page.placeholders[1].text = "A large language model (LLM) with BERT embeddings"
    out = io.BytesIO()
    deck.save(out)
    return (("a.pdf", simple_pdf(pages=2)), ("a.pptx", out.getvalue()))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    sample=st.sampled_from([0, 1]),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    cut=st.floats(0.05, 1.0),
)
def test_damaged_pdfs_and_slides_are_read_or_refused(
    sample: int, flips: list[tuple[float, int]], cut: float
) -> None:
    name, valid = _valid_samples()[sample]
    data = bytearray(valid[: max(1, int(len(valid) * cut))])
    for where, value in flips:
        data[int(where * len(data))] = value
    _read_or_refuse(bytes(data), name)
