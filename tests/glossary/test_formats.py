from __future__ import annotations

import codecs
import json
import os
from pathlib import Path

import pytest

from glossary.formats import ParseOptions, detect_format, export_glossary, parse_glossary
from glossary.model import GlossaryEntry, GlossarySnapshot
from glossary.validation import GlossaryLimits
from kernel.errors import ErrorCode, RasstError
from tests.glossary.conftest import SHARED_GLOSSARIES

ENTRIES = (
    GlossaryEntry(
        "BLEU score", {"de": ("BLEU-Wert",), "zh": ("BLEU 分数", "BLEU 值")}, "metric", 2
    ),
    GlossaryEntry("contrastive learning", {"de": ("kontrastives Lernen",), "ja": ("対照学習",)}),
    GlossaryEntry("=SUM(A1:A2)", {"de": ("+49 30 123",), "zh": ("@home",)}, "formula-like", 0),
    GlossaryEntry('Café, "quoted"; semi', {"de": ("Kaffee",)}, None, 5),
    GlossaryEntry("source only", {}),
)
SNAPSHOT = GlossarySnapshot("gl_x", 3, "default", "test", "en", ENTRIES)


def parse(data: bytes, **options: object) -> tuple[tuple[GlossaryEntry, ...], object]:
    parsed = parse_glossary(data, ParseOptions(**options))  # type: ignore[arg-type]
    return parsed.entries, parsed.report


def _as_dicts(
    entries: tuple[GlossaryEntry, ...], *, priority: bool = True
) -> list[dict[str, object]]:
    return [
        {
            "source": e.source,
            "targets": {k: list(v) for k, v in e.targets.items()},
            "note": e.note,
            "priority": e.priority if priority else 0,
        }
        for e in entries
    ]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "tmx"])
def test_round_trip_keeps_every_field(fmt: str) -> None:
    exported = export_glossary(SNAPSHOT, fmt)
    assert detect_format(exported.content, f"x.{exported.extension}") == fmt
    entries, report = parse(exported.content)
    assert _as_dicts(entries) == _as_dicts(ENTRIES)
    assert report.skipped == []  # type: ignore[attr-defined]


def test_round_trip_tbx_keeps_terms_and_notes() -> None:
    # TBX-Basic has no priority field; everything else survives.
    exported = export_glossary(SNAPSHOT, "tbx")
    assert b'xmlns="urn:iso:std:iso:30042:ed-2"' in exported.content
    entries, _ = parse(exported.content)
    assert _as_dicts(entries, priority=False) == _as_dicts(ENTRIES, priority=False)


def test_csv_export_neutralises_formulas_for_spreadsheets() -> None:
    text = export_glossary(SNAPSHOT, "csv").content.decode("utf-8-sig")
    cells = [c for line in text.splitlines() for c in line.split(",")]
    assert "'=SUM(A1:A2)" in cells
    assert "'+49 30 123" in cells and "'@home" in cells
    assert not any(c.startswith(("=", "+", "@", "-")) for c in cells)


def test_csv_header_with_repeated_language_and_metadata_columns() -> None:
    data = b"id,en,de,de,note,priority,talk\n1,GPU,Grafikprozessor,GPU,hardware,3,x\n"
    entries, report = parse(data)
    assert entries == (GlossaryEntry("GPU", {"de": ("Grafikprozessor", "GPU")}, "hardware", 3),)
    assert report.ignored_columns == ["id", "talk"]  # type: ignore[attr-defined]


def test_headerless_two_columns_need_target_language() -> None:
    data = b"AI\tKI\nmachine learning\tmaschinelles Lernen\n"
    with pytest.raises(RasstError) as info:
        parse(data)
    assert info.value.code is ErrorCode.VALIDATION_FAILED
    assert "target_language" in info.value.message
    entries, report = parse(data, target_language="de")
    assert [e.source for e in entries] == ["AI", "machine learning"]
    assert entries[0].targets == {"de": ("KI",)}
    assert report.delimiter == "\t"  # type: ignore[attr-defined]


def test_semicolon_csv_utf16_and_bom_are_detected() -> None:
    text = "en;de\nnetwork;Netz\n"
    for data in (
        text.encode("utf-16"),
        codecs.BOM_UTF8 + text.encode(),
        text.encode("utf-16-le"),
    ):
        entries, report = parse(data)
        assert entries == (GlossaryEntry("network", {"de": ("Netz",)}),)
        assert report.delimiter == ";"  # type: ignore[attr-defined]


def test_unicode_and_whitespace_are_normalised() -> None:
    decomposed = "Cafe\u0301"
    data = f"en\tfr\n  {decomposed}\u00a0 au  lait \t café\n".encode()
    entries, _ = parse(data)
    assert entries[0].source == "Caf\u00e9 au lait"
    assert entries[0].targets == {"fr": ("café",)}


def test_duplicates_merge_and_are_counted() -> None:
    data = b"en,de\nmodel,Modell\nmodel,Model\nmodel,Modell\n"
    entries, report = parse(data)
    assert entries == (GlossaryEntry("model", {"de": ("Modell", "Model")}),)
    assert report.merged_duplicates == 2  # type: ignore[attr-defined]


def test_skipped_rows_carry_line_numbers_and_reasons() -> None:
    data = b'en,de\nok,gut\n,leer\n"multi\nline",x\ntoo,many,cells\nfine,fein\n'
    entries, report = parse(data)
    assert [e.source for e in entries] == ["ok", "multi line", "fine"]
    skipped = [(s.line, s.reason) for s in report.skipped]  # type: ignore[attr-defined]
    assert skipped == [(3, "empty source term"), (6, "3 columns, expected 2")]


def test_long_lang_source_target_table() -> None:
    data = b"lang\ten\ttgt\tsources\nde\tAI\tKI\tx\nzh\tAI\tAI\tx\n"
    entries, report = parse(data)
    assert entries == (GlossaryEntry("AI", {"de": ("KI",), "zh": ("AI",)}),)
    assert report.merged_duplicates == 1  # type: ignore[attr-defined]


def test_rasst_reference_json() -> None:
    document = {
        "bleu score": {
            "term": "BLEU score",
            "target_translations": {"zh": "BLEU分数", "de": "BLEU"},
        },
        "kinyabert": {"target_translations": {"de": "KinyaBERT"}},
    }
    entries, report = parse(json.dumps(document, ensure_ascii=False).encode())
    assert report.format == "rasst-json"  # type: ignore[attr-defined]
    assert entries[0] == GlossaryEntry("BLEU score", {"zh": ("BLEU分数",), "de": ("BLEU",)})
    assert entries[1].source == "kinyabert"
    as_list = json.dumps(list(document.values())).encode()
    entries, report = parse(as_list)
    assert [e.source for e in entries] == ["BLEU score"]
    assert report.skipped[0].item == "[1]"  # type: ignore[attr-defined]


def test_tbx_v2_martif_with_deprecated_terms() -> None:
    data = b"""<?xml version="1.0"?>
<!DOCTYPE martif SYSTEM "TBXBasiccoreStructV02.dtd">
<martif type="TBX-Basic" xml:lang="en"><text><body>
 <termEntry id="t1">
  <descrip type="definition">A score.</descrip>
  <langSet xml:lang="en"><tig><term>BLEU score</term></tig></langSet>
  <langSet xml:lang="de">
   <tig><term>BLEU-Wert</term>
    <termNote type="administrativeStatus">deprecatedTerm-admn-sts</termNote></tig>
   <tig><term>BLEU-Score</term>
    <termNote type="administrativeStatus">preferredTerm-admn-sts</termNote></tig>
  </langSet>
 </termEntry>
 <termEntry id="t2"><langSet xml:lang="de"><tig><term>nur Deutsch</term></tig></langSet></termEntry>
</body></text></martif>"""
    entries, report = parse(data)
    assert entries == (GlossaryEntry("BLEU score", {"de": ("BLEU-Score",)}, "A score."),)
    assert [(s.line, s.item) for s in report.skipped] == [(14, "t2")]  # type: ignore[attr-defined]


def test_tmx_inline_codes_are_not_words() -> None:
    data = b"""<tmx version="1.4"><header srclang="EN-US" segtype="phrase" adminlang="en"
    datatype="plaintext" o-tmf="x" creationtool="x" creationtoolversion="1"/><body>
    <tu><tuv xml:lang="en-US"><seg><bpt i="1">&lt;b&gt;</bpt>GPU<ept i="1">&lt;/b&gt;</ept></seg></tuv>
    <tuv xml:lang="de-DE"><seg>Grafikprozessor</seg></tuv></tu></body></tmx>"""
    entries, _ = parse(data)
    assert entries == (GlossaryEntry("GPU", {"de-DE": ("Grafikprozessor",)}),)


@pytest.mark.parametrize("path", sorted(SHARED_GLOSSARIES.glob("*")), ids=lambda p: p.name)
def test_shared_glossaries_import_without_skips(path: Path) -> None:
    parsed = parse_glossary(path.read_bytes(), ParseOptions(), filename=path.name)
    report = parsed.report
    data_rows = sum(1 for line in path.read_text().splitlines()[1:] if line.strip())
    assert report.skipped == []
    # Every data row is an entry or was merged into one: nothing vanished.
    assert report.entries_accepted + report.merged_duplicates == data_rows
    assert parsed.source_language == "en"
    # Metadata columns are named in the report, never read as translations.
    assert all(len(lang) <= 5 for lang in report.target_languages)


def test_shared_glossaries_keep_their_languages() -> None:
    tico = parse_glossary(
        (SHARED_GLOSSARIES / "tico19_covid_terms_en_de_zh_ja.tsv").read_bytes(), ParseOptions()
    )
    assert tico.report.target_languages == ["de", "zh", "ja"]
    assert "id" in tico.report.ignored_columns
    paper = parse_glossary(
        (SHARED_GLOSSARIES / "rasst_acl_paper_extracted.tsv").read_bytes(), ParseOptions()
    )
    assert paper.report.target_languages == ["zh", "de", "ja"]
    assert "is_acronym" in paper.report.ignored_columns


# -- hostile inputs: each refused with a 4xx code and a report ----------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<tbx xml:lang="en"><text><body><conceptEntry id="c"><langSec xml:lang="en"><termSec>
<term>&lol3;</term></termSec></langSec></conceptEntry></body></text></tbx>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE tmx [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<tmx version="1.4"><header srclang="en"/><body><tu><tuv xml:lang="en"><seg>&xxe;</seg></tuv>
<tuv xml:lang="de"><seg>x</seg></tuv></tu></body></tmx>"""
HOSTILE = {
    "entity-expansion": (BILLION_LAUGHS, ErrorCode.VALIDATION_FAILED),
    "external-entity": (XXE, ErrorCode.VALIDATION_FAILED),
    "binary-junk": (os.urandom(4096) + b"\x00\x01", ErrorCode.UNSUPPORTED_FORMAT),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), ErrorCode.UNSUPPORTED_FORMAT),
    "wrong-columns": (b"alpha,beta,gamma\n1,2,3\n4,5,6\n", ErrorCode.VALIDATION_FAILED),
    "all-rows-wrong-width": (b"en,de\na,b,c,d\ne,f,g,h\n", ErrorCode.VALIDATION_FAILED),
    "10k-char-term": (b"en,de\nok,gut\n" + b"x" * 10_000 + b",y\n", ErrorCode.LIMIT_EXCEEDED),
    "mixed-encodings": (
        "en,de\nStraße,street\n".encode() + "Größe,size\n".encode("latin-1"),
        ErrorCode.VALIDATION_FAILED,
    ),
    "malformed-xml": (b"<tbx><text><body><conceptEntry>", ErrorCode.VALIDATION_FAILED),
    "json-scalar": (b"42", ErrorCode.VALIDATION_FAILED),
    "deep-json": (b"[" * 100_000 + b"]" * 100_000, ErrorCode.VALIDATION_FAILED),
    "unknown-xml": (b"<html><body>hi</body></html>", ErrorCode.UNSUPPORTED_FORMAT),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input_is_refused_with_a_report(name: str) -> None:
    data, code = HOSTILE[name]
    with pytest.raises(RasstError) as info:
        parse_glossary(data, ParseOptions())
    assert info.value.code is code, info.value.message
    assert 400 <= info.value.http_status < 500
    report = info.value.detail["report"]
    assert report["entries_accepted"] == 0


def test_mixed_encoding_report_points_at_the_line() -> None:
    data, _ = HOSTILE["mixed-encodings"]
    with pytest.raises(RasstError) as info:
        parse_glossary(data, ParseOptions())
    assert info.value.detail["report"]["skipped"][0]["line"] == 3


def test_too_many_entries_and_too_large_files() -> None:
    limits = GlossaryLimits(max_entries=10, max_file_bytes=2000)
    rows = "".join(f"term {i},Begriff {i}\n" for i in range(11))
    with pytest.raises(RasstError) as info:
        parse_glossary(("en,de\n" + rows).encode(), ParseOptions(limits=limits))
    assert info.value.code is ErrorCode.LIMIT_EXCEEDED
    with pytest.raises(RasstError) as info:
        parse_glossary(b"en,de\n" + b"a,b\n" * 1000, ParseOptions(limits=limits))
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
