"""Fuzzing every glossary parser, and the round trip through every exporter.

Entry points: ``parse_glossary`` (each format forced, and detected), ``detect_format``,
the upload path ``parse_upload`` (form fields included) and the JSON-body path
(``GlossaryCreate`` then ``parse_entries``).

Invariant: a parse either returns entries that obey the validation rules
(normalised, within the limits, storable) or raises ``RasstError`` with one of
the upload error codes and a JSON-serialisable report; never another exception,
never a hang (a per-example deadline).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from glossary.formats import (
    EXPORT_FORMATS,
    ParsedGlossary,
    ParseOptions,
    detect_format,
    export_glossary,
    parse_glossary,
)
from glossary.languages import canonical_language
from glossary.model import GlossaryEntry, GlossarySnapshot
from glossary.report import ImportReport
from glossary.schemas import GlossaryCreate
from glossary.service import UploadRequest, glossary_name, parse_upload
from glossary.validation import (
    MAX_REPORTED_SKIPS,
    PRIORITY_RANGE,
    GlossaryLimits,
    normalise_text,
)
from kernel.errors import ErrorCode, RasstError, error_body
from tests.glossary.conftest import SHARED_GLOSSARIES
from tests.reliability.fuzzing import fuzz_settings

# Small limits, so that fuzzed files reach them.
SMALL = GlossaryLimits(
    max_file_bytes=64 * 1024,
    max_entries=40,
    max_term_chars=64,
    max_note_chars=128,
    max_translations_per_language=4,
)
DEFAULT = GlossaryLimits()
UPLOAD_ERRORS = frozenset(
    {
        ErrorCode.VALIDATION_FAILED,
        ErrorCode.UNSUPPORTED_FORMAT,
        ErrorCode.PAYLOAD_TOO_LARGE,
        ErrorCode.LIMIT_EXCEEDED,
    }
)
FORMATS = st.sampled_from([None, "csv", "tsv", "json", "tbx", "tmx"])
FILENAMES = st.sampled_from(
    [None, "g.csv", "g.tsv", "g.txt", "g.tab", "g.json", "g.xml", "g.tbx", "g.tmx", "g", ".csv"]
)
LIMITS = st.sampled_from([SMALL, DEFAULT])
# Parsing a few hundred KiB takes milliseconds; seconds means a pathological path.
PARSE_DEADLINE_MS = 5000


# -- the invariant ---------------------------------------------------------------------------


def assert_valid(parsed: ParsedGlossary, limits: GlossaryLimits) -> None:
    """What the store may rely on, whatever file produced the entries."""
    assert canonical_language(parsed.source_language) == parsed.source_language
    assert 0 < len(parsed.entries) <= limits.max_entries
    sources = [e.source for e in parsed.entries]
    assert len(set(sources)) == len(sources), "duplicate source terms"
    for entry in parsed.entries:
        _assert_clean(entry.source, limits.max_term_chars)
        for lang, options in entry.targets.items():
            assert canonical_language(lang) == lang, lang
            assert 0 < len(options) <= limits.max_translations_per_language
            assert len(set(options)) == len(options)
            for option in options:
                _assert_clean(option, limits.max_term_chars)
        if entry.note is not None:
            # Merged duplicates join their notes, so a note may exceed max_note_chars.
            _assert_clean(entry.note, max_chars=len(entry.note))
        assert isinstance(entry.priority, int)
        assert PRIORITY_RANGE[0] <= entry.priority <= PRIORITY_RANGE[1], entry.priority
    if parsed.name is not None:
        _assert_storable(parsed.name)
    report = parsed.report
    assert report.entries_accepted == len(parsed.entries)
    json.loads(report.model_dump_json())


def _assert_clean(text: str, max_chars: int) -> None:
    assert text and normalise_text(text) == text and len(text) <= max_chars, text
    _assert_storable(text)


def _assert_storable(text: str) -> None:
    """Storable in SQLite and PostgreSQL, exportable as XML 1.0 (TBX, TMX) and CSV."""
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text), "lone surrogate"
    assert not any(ord(c) < 0x20 and c not in "\t\n\r" for c in text), text
    assert not any(0x7F <= ord(c) <= 0x9F for c in text), text
    assert "\ufffe" not in text and "\uffff" not in text, text


def outcome(parse: Callable[[], ParsedGlossary], limits: GlossaryLimits) -> ParsedGlossary | None:
    """Run one parse: a valid result, or a RasstError with an upload code; nothing else."""
    try:
        parsed = parse()
    except RasstError as exc:
        assert exc.code in UPLOAD_ERRORS, (exc.code, exc.message)
        assert isinstance(exc.message, str) and exc.message
        json.dumps(error_body(exc.code, exc.message, exc.detail))  # the HTTP body
        if isinstance(exc.detail, dict) and "report" in exc.detail:
            report = ImportReport.model_validate(exc.detail["report"])
            assert len(report.skipped) <= MAX_REPORTED_SKIPS
        return None
    assert_valid(parsed, limits)
    return parsed


def parse_every_way(
    data: bytes, fmt: str | None, filename: str | None, limits: GlossaryLimits
) -> None:
    outcome(
        lambda: parse_glossary(data, ParseOptions(fmt, limits=limits), filename=filename), limits
    )
    assert detect_format(data, filename) in ("csv", "tsv", "json", "tbx", "tmx", "xml")


# -- inputs --------------------------------------------------------------------------------------

LANG_CODES = ["en", "de", "zh", "zh-CN", "zh-Hans", "ja", "fr", "pt-BR", "es-419", "yue", "sr-Latn"]
ODD_LANGS = ["EN", "zh_CN", "id", "no", "xx", "tgt", "en-", "e", "*all*", "", "en-GB-oed"]

XML_ENCODINGS = [
    "utf-8",
    "UTF-16",
    "utf-32",
    "latin-1",
    "ascii",
    "cp1252",
    "shift_jis",
    "gb2312",
    "utf-7",
    "koi8-r",
    "ebcdic-cp-us",
    "no-such-codec",
]
SNIPPETS = [
    b'<!DOCTYPE tbx [<!ENTITY x "boom">]>',
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]>',
    b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
    b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]>',
    b'<!DOCTYPE martif SYSTEM "TBXcoreStructV02.dtd">',
    b"&x;",
    b"&lol3;",
    b"&xxe;",
    b"&#0;",
    b"&#xFFFF;",
    b"&#xD800;",
    b"&#65;",
    b"&amp;",
    b"<![CDATA[ x ]]>",
    b"<?pi data?>",
    b"<!-- c -->",
    b'<seg xml:lang="de">x</seg>',
    b'<termNote type="administrativeStatus">deprecatedTerm-admn-sts</termNote>',
    b'<tuv xml:lang="en"><seg>s</seg></tuv>',
    b'<langSec xml:lang="de"><termSec><term>t</term></termSec></langSec>',
    b"\x00",
    b'"',
    b'""',
    b",",
    b";",
    b"\t",
    b"|",
    b"\r",
    b"\r\n",
    b"\n",
    b"'=",
    codecs.BOM_UTF8,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
    codecs.BOM_UTF32_LE,
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xef\xbf\xbf",
    "\u2028\u00a0\u200b\u0301".encode(),
    b"\x1f\x85\x9f",
    b"Infinity",
    b"-Infinity",
    b"NaN",
    b"1e400",
    b"-0",
    b"99999999999999999999",
    b"2147483648",
    b'"\\ud800"',
    b'"\\u0000"',
    b"null",
    b"[]",
    b"{}",
    b'"priority": 1e999',
    b'"source_language": "xx"',
]


@st.composite
def big_snippets(draw: st.DrawFn) -> bytes:
    """Inputs that are large in one dimension: depth, field size, row or column count."""
    n = draw(st.integers(100, 60_000))
    return draw(
        st.sampled_from(
            [
                b"[" * n,
                b'{"a":' * n,
                b"<a>" * n,
                b"<a>" * n + b"x" + b"</a>" * n,
                b"<seg>" + b"<b>" * n + b"x" + b"</b>" * n + b"</seg>",
                b"x" * n,
                b"9" * n,
                b'"' + b"x" * n + b'"',
                b"," * n,
                b"en," * (n // 3) + b"\n",
                b"a,b\n" * (n // 4),
                b"<tu/>" * (n // 5),
            ]
        )
    )


@st.composite
def xml_declarations(draw: st.DrawFn) -> bytes:
    return f'<?xml version="1.0" encoding="{draw(st.sampled_from(XML_ENCODINGS))}"?>'.encode()


inserts = st.one_of(
    st.sampled_from(SNIPPETS),
    big_snippets(),
    xml_declarations(),
    st.binary(min_size=1, max_size=16),
)


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes]) -> bytes:
    """A valid file with one to four mutations: what a broken tool or an attacker sends."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 4))):
        # Anywhere, the very start (declarations, BOMs), or just inside an element.
        where = draw(st.sampled_from(["anywhere", "start", "after_tag"]))
        tag_ends = [i + 1 for i, byte in enumerate(data) if byte == ord(">")]
        if where == "start":
            at = 0
        elif where == "after_tag" and tag_ends:
            at = draw(st.sampled_from(tag_ends))
        else:
            at = draw(st.integers(0, len(data)))
        action = draw(
            st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate", "reencode"])
        )
        if action == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "truncate":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(inserts)
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif action == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 256))] * draw(st.integers(1, 20))
        else:
            codec = draw(
                st.sampled_from(
                    ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "latin-1"]
                    + ["cp1252", "shift_jis", "utf-7"]
                )
            )
            data = bytearray(bytes(data).decode("utf-8", "replace").encode(codec, "replace"))
    return bytes(data)


# Normalised, storable text, as the store holds it: what an export starts from.
clean_text = (
    st.text(
        st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\ufffe\uffff\x85"),
        min_size=1,
        max_size=24,
    )
    .map(normalise_text)
    .filter(bool)
)


@st.composite
def snapshots(draw: st.DrawFn) -> GlossarySnapshot:
    source_language = draw(st.sampled_from(LANG_CODES))
    others = [code for code in LANG_CODES if code != source_language]
    sources = draw(st.lists(clean_text, min_size=1, max_size=8, unique=True))
    entries = tuple(
        GlossaryEntry(
            source=source,
            targets=draw(
                st.dictionaries(
                    st.sampled_from(others),
                    st.lists(clean_text, min_size=1, max_size=3, unique=True).map(tuple),
                    max_size=3,
                )
            ),
            note=draw(st.none() | clean_text),
            priority=draw(st.integers(-1000, 1000) | st.sampled_from(PRIORITY_RANGE)),
        )
        for source in sources
    )
    return GlossarySnapshot("gl_fuzz", 1, "default", draw(clean_text), source_language, entries)


def _seed_files() -> list[bytes]:
    files = [path.read_bytes()[:20_000] for path in sorted(SHARED_GLOSSARIES.glob("*"))]
    files += [
        b"en,de,note,priority\nGPU,Grafikprozessor,hardware,3\nAI,KI,,\n",
        b"lang\ten\ttgt\nde\tAI\tKI\nzh\tAI\tAI\n",
        b"AI;KI\nmachine learning;maschinelles Lernen\n",
        json.dumps(
            {"bleu score": {"term": "BLEU score", "target_translations": {"zh": "BLEU", "de": "B"}}}
        ).encode(),
        b'<?xml version="1.0"?><martif type="TBX" xml:lang="en"><text><body>'
        b'<termEntry id="t1"><langSet xml:lang="en"><tig><term>GPU</term></tig></langSet>'
        b'<langSet xml:lang="de"><tig><term>Grafikprozessor</term></tig></langSet>'
        b"</termEntry></body></text></martif>",
        b'<tmx version="1.4"><header srclang="*all*"/><body><tu tuid="1">'
        b'<tuv lang="en"><seg>a <bpt i="1">&lt;b&gt;</bpt>GPU<ept i="1">&lt;/b&gt;</ept></seg>'
        b'</tuv><tuv xml:lang="de"><seg>GPU</seg></tuv><note>n</note></tu></body></tmx>',
    ]
    example_snapshot = GlossarySnapshot(
        "gl_seed",
        1,
        "default",
        "seed",
        "en",
        (
            GlossaryEntry("BLEU score", {"de": ("BLEU-Wert",), "zh": ("BLEU 分数",)}, "metric", 2),
            GlossaryEntry("=SUM(A1)", {"de": ("+49",)}, None, -3),
        ),
    )
    files += [export_glossary(example_snapshot, fmt).content for fmt in EXPORT_FORMATS]
    return files


seed_files = st.sampled_from(_seed_files())
exported_files = st.tuples(snapshots(), st.sampled_from(EXPORT_FORMATS)).map(
    lambda pair: export_glossary(*pair).content
)

JSON_KEYS = st.sampled_from(
    ["entries", "source", "term", "targets", "target_translations", "note", "priority"]
    + ["name", "source_language", "format"]
    + LANG_CODES
    + ODD_LANGS
) | st.text(max_size=10)


def _json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=5) | st.dictionaries(JSON_KEYS, inner, max_size=5)


json_documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(LANG_CODES + ODD_LANGS)
    | st.text(max_size=30),
    _json_containers,
    max_leaves=40,
).map(lambda doc: json.dumps(doc, ensure_ascii=False).encode())


@st.composite
def delimited_files(draw: st.DrawFn) -> bytes:
    """Tables whose header is languages, known column names or junk, cells anything."""
    width = draw(st.integers(1, 6))
    header = draw(
        st.lists(
            st.sampled_from(
                LANG_CODES + ODD_LANGS + ["note", "priority", "lang", "tgt", "source", "id", "x"]
            ),
            min_size=width,
            max_size=width,
        )
    )
    cell = st.one_of(
        st.text(max_size=12),
        st.sampled_from(["", " ", "'=1", "=1", "'", '"', "\x00", "\r", "123", "-5", "1e999"]),
    )
    rows = draw(st.lists(st.lists(cell, min_size=0, max_size=width + 1), max_size=12))
    delimiter = draw(st.sampled_from([",", "\t", ";", "|"]))
    if draw(st.booleans()):
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
        text = buffer.getvalue()
    else:  # written naively, without quoting
        text = "\n".join(delimiter.join(r) for r in [header, *rows])
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le"])))


@st.composite
def xml_files(draw: st.DrawFn) -> bytes:
    """Trees made of TBX and TMX element names, with languages, statuses and text."""
    names = [
        "tbx", "martif", "tmx", "header", "body", "text", "conceptEntry", "termEntry",
        "langSec", "langSet", "termSec", "tig", "ntig", "term", "termNote", "note",
        "descrip", "title", "tu", "tuv", "seg", "prop", "bpt", "ph", "x",
    ]  # fmt: skip

    def element(depth: int) -> str:
        name = draw(st.sampled_from(names))
        attrs = ""
        for attr in draw(st.lists(st.sampled_from(["xml:lang", "lang", "srclang", "type", "id"]), max_size=2, unique=True)):  # fmt: skip
            value = draw(
                st.sampled_from(
                    LANG_CODES + ODD_LANGS + ["administrativeStatus", "x-rasst-priority"]
                )
            )
            attrs += f' {attr}="{value}"'
        text = draw(st.text(max_size=8)).translate({ord("<"): "&lt;", ord("&"): "&amp;"})
        kids = (
            "".join(element(depth + 1) for _ in range(draw(st.integers(0, 3)))) if depth < 5 else ""
        )
        return f"<{name}{attrs}>{text}{kids}</{name}>"

    root = draw(st.sampled_from(["tbx", "martif", "tmx"]))
    body = "".join(element(1) for _ in range(draw(st.integers(0, 4))))
    lang = draw(st.sampled_from(LANG_CODES + ODD_LANGS))
    return f'<{root} xml:lang="{lang}">{body}</{root}>'.encode()


# -- the fuzz targets ----------------------------------------------------------------------------


@fuzz_settings(300, deadline=PARSE_DEADLINE_MS)
@given(data=st.binary(max_size=4096), fmt=FORMATS, filename=FILENAMES, limits=LIMITS)
@example(data=b"\x00\x01\x02", fmt=None, filename=None, limits=SMALL)
def test_random_bytes(data: bytes, fmt: str | None, filename: str | None, limits: GlossaryLimits):
    parse_every_way(data, fmt, filename, limits)


@fuzz_settings(400, deadline=PARSE_DEADLINE_MS)
@given(data=mutated(seed_files | exported_files), fmt=FORMATS, filename=FILENAMES, limits=LIMITS)
# Regressions: each of these raised something other than RasstError.
@example(  # expat refuses multi-byte declared encodings with ValueError
    data=b'<?xml version="1.0" encoding="shift_jis"?><tmx><body/></tmx>',
    fmt=None,
    filename=None,
    limits=SMALL,
)
@example(  # ... and unknown ones with LookupError
    data=b'<?xml version="1.0" encoding="no-such-codec"?><tbx/>',
    fmt="tbx",
    filename=None,
    limits=SMALL,
)
@example(  # text_of recursed once per nesting level: RecursionError
    data=b'<tmx><header srclang="en"/><body><tu><tuv xml:lang="en"><seg>'
    + b"<b>" * 5000
    + b"x"
    + b"</b>" * 5000
    + b"</seg></tuv></tu></body></tmx>",
    fmt=None,
    filename=None,
    limits=DEFAULT,
)
@example(  # int(float("inf")): OverflowError
    data=b'{"entries": [{"source": "a", "priority": Infinity}]}',
    fmt=None,
    filename=None,
    limits=SMALL,
)
@example(  # an integer no database column holds: the upload failed in the store (500)
    data=b'{"entries": [{"source": "a", "priority": 99999999999999999999}]}',
    fmt=None,
    filename=None,
    limits=SMALL,
)
@example(data=b"en,de,priority\na,b,2147483648\n", fmt="csv", filename=None, limits=SMALL)
@example(  # json.loads raises a plain ValueError for integers over 4300 digits
    data=b'{"entries": [{"source": "a", "priority": ' + b"9" * 5000 + b"}]}",
    fmt=None,
    filename=None,
    limits=DEFAULT,
)
@example(  # a lone surrogate: the store could not encode the term (500)
    data=b'{"entries": [{"source": "a\\ud800", "targets": {"de": "x"}}]}',
    fmt=None,
    filename=None,
    limits=SMALL,
)
@example(  # U+FFFF was accepted, then no TBX or TMX export of it was well-formed XML
    data="en,de\na\uffff,b\n".encode(), fmt=None, filename=None, limits=SMALL
)
@example(  # a NUL in a note: PostgreSQL text cannot hold it
    data=b'{"entries": [{"source": "a", "note": "x\\u0000y"}]}',
    fmt=None,
    filename=None,
    limits=SMALL,
)
def test_mutated_valid_files(
    data: bytes, fmt: str | None, filename: str | None, limits: GlossaryLimits
) -> None:
    parse_every_way(data, fmt, filename, limits)


@fuzz_settings(300, deadline=PARSE_DEADLINE_MS)
@given(
    data=json_documents | delimited_files() | xml_files(),
    fmt=FORMATS,
    filename=FILENAMES,
    limits=LIMITS,
)
def test_structured_documents(
    data: bytes, fmt: str | None, filename: str | None, limits: GlossaryLimits
) -> None:
    parse_every_way(data, fmt, filename, limits)


form_values = st.none() | st.sampled_from(LANG_CODES + ODD_LANGS + [" csv ", "JSON", "xlsx"])


@fuzz_settings(200, deadline=PARSE_DEADLINE_MS)
@given(
    data=mutated(seed_files) | st.binary(max_size=512),
    filename=FILENAMES | st.text(max_size=20),
    fields=st.fixed_dictionaries(
        {
            "format": form_values | st.sampled_from(["csv", "tsv", "json", "tbx", "tmx"]),
            "source_language": form_values,
            "target_language": form_values,
            "name": st.none() | st.text(max_size=300),
        }
    ),
    limits=LIMITS,
)
def test_upload_path_with_form_fields(
    data: bytes, filename: str, fields: dict[str, str | None], limits: GlossaryLimits
) -> None:
    upload = UploadRequest(data=data, filename=filename, **fields)
    parsed = outcome(lambda: parse_upload(upload, limits), limits)
    if parsed is not None:
        try:
            name = glossary_name(upload.name, parsed, upload.filename, limits)
        except RasstError as exc:
            assert exc.code is ErrorCode.VALIDATION_FAILED
        else:
            assert name and normalise_text(name) == name


@fuzz_settings(200, deadline=PARSE_DEADLINE_MS)
@given(body=json_documents, source_language=form_values, limits=LIMITS)
@example(
    body=b'{"entries": [{"source": "a", "priority": 1e999}]}', source_language=None, limits=SMALL
)
def test_json_body_path(body: bytes, source_language: str | None, limits: GlossaryLimits) -> None:
    try:
        create = GlossaryCreate.model_validate_json(body)
    except ValidationError as exc:
        # The router answers validation_failed with these problems as the detail.
        json.dumps(exc.errors(include_url=False, include_input=False), default=str)
        return
    upload = UploadRequest(body=create, source_language=source_language)
    outcome(lambda: parse_upload(upload, limits), limits)


# -- round trip ----------------------------------------------------------------------------------


def _as_dicts(entries: tuple[GlossaryEntry, ...], *, priority: bool) -> list[dict[str, Any]]:
    return [
        {
            "source": e.source,
            "targets": {lang: list(v) for lang, v in e.targets.items()},
            "note": e.note,
            "priority": e.priority if priority else 0,
        }
        for e in entries
    ]


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@fuzz_settings(60, deadline=PARSE_DEADLINE_MS)
@given(snapshot=snapshots())
@example(  # one column: the delimiter sniffer took the ";" inside the terms for one
    snapshot=GlossarySnapshot(
        "gl_x", 1, "default", "n", "en", (GlossaryEntry("a;b", {}), GlossaryEntry("c;d", {}))
    )
)
@example(  # "'=" was exported as "''=" but read back as "''=": the escaping was not reversible
    snapshot=GlossarySnapshot(
        "gl_x", 1, "default", "n", "en", (GlossaryEntry("'=", {"de": ("''-1",)}),)
    )
)
@example(  # a language column of numbers was read as an identifier column and dropped
    snapshot=GlossarySnapshot(
        "gl_x", 1, "default", "n", "en", (GlossaryEntry("0", {"de": ("1",)}, None, 0),)
    )
)
def test_export_then_import_gives_back_the_glossary(fmt: str, snapshot: GlossarySnapshot) -> None:
    exported = export_glossary(snapshot, fmt)
    assert detect_format(exported.content, f"g.{exported.extension}") == fmt
    for options in (ParseOptions(), ParseOptions(fmt)):
        parsed = parse_glossary(exported.content, options, filename=f"g.{exported.extension}")
        assert parsed.source_language == snapshot.source_language
        # TBX-Basic has no priority field.
        keeps_priority = fmt != "tbx"
        assert _as_dicts(parsed.entries, priority=keeps_priority) == _as_dicts(
            snapshot.entries, priority=keeps_priority
        )
        assert parsed.report.skipped == []
        if fmt in ("json", "tbx"):
            assert parsed.name == snapshot.name
