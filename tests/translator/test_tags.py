"""Term tags never reach users, however the stream splits them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.translator.tags import TagStripper, strip_tags


@pytest.mark.parametrize(
    ("raw", "visible"),
    [
        ("<t>对比学习</t>是一种方法", "对比学习是一种方法"),
        ("Der <term>BLEU-Wert</term> steigt", "Der BLEU-Wert steigt"),
        ("< t >A</ t >", "A"),
        ("<T>A</T>", "A"),
        ("<TERM>A</Term>", "A"),
        ("<t/>A", "A"),
        ("＜t＞对比学习＜/t＞", "对比学习"),
        # A tag that lost its closing bracket.
        ("<t对比学习</t 是", "对比学习 是"),
        ("<t 机器学习", " 机器学习"),
        # Cut off by max_tokens.
        ("学习</t", "学习"),
        ("学习</", "学习"),
        ("学习<t", "学习"),
        # Not tags: keep.
        ("a < b", "a < b"),
        ("x<3", "x<3"),
        ("<tea>", "<tea>"),
        ("<table>", "<table>"),
        ("<b>x</b>", "<b>x</b>"),
        ("<tür>", "<tür>"),
        ("学习<", "学习<"),
        ("", ""),
    ],
)
def test_strip_tags(raw: str, visible: str) -> None:
    assert strip_tags(raw) == visible


def test_tag_split_across_deltas_is_held_back_then_removed() -> None:
    stripper = TagStripper()
    out = [
        stripper.feed(d) for d in ["我们用", "<", "t", ">", "对比", "学习", "</", "t", ">", "训练"]
    ]
    assert out == ["我们用", "", "", "", "对比", "学习", "", "", "", "训练"]
    assert stripper.flush() == ""


def test_text_is_not_held_longer_than_needed() -> None:
    stripper = TagStripper()
    assert stripper.feed("a <") == "a "
    assert stripper.feed(" b") == "< b"
    assert stripper.feed("<te") == ""
    assert stripper.feed("a") == "<tea"


_ALPHABET = st.sampled_from(["<", ">", "/", "t", "e", "r", "m", " ", "学", "a", "T", "＜", "＞"])


@given(
    text=st.lists(_ALPHABET, max_size=40).map("".join),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=10),
)
def test_streaming_equals_whole_text(text: str, cuts: list[int]) -> None:
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    stripper = TagStripper()
    streamed = "".join(stripper.feed(text[a:b]) for a, b in zip(bounds, bounds[1:], strict=False))
    streamed += stripper.flush()
    assert streamed == strip_tags(text)


@given(st.lists(st.sampled_from(["<t>", "</t>", "<term>", "</term>", "词", "a", " "]), max_size=30))
def test_no_well_formed_tag_survives(parts: list[str]) -> None:
    visible = strip_tags("".join(parts))
    for tag in ("<t>", "</t>", "<term>", "</term>"):
        assert tag not in visible
    assert visible == "".join(p for p in parts if not p.startswith("<"))
