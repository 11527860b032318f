"""Subtitle export as pure functions: events → cues → SRT/WebVTT, checked by real parsers."""

from __future__ import annotations

import html
from typing import Any

import pytest
import srt
import webvtt

from server.subtitles import Cue, SubtitleParams, UnknownLanguage, cues_for, to_srt, to_vtt


def started(targets: list[str], mode: str = "translation") -> dict[str, Any]:
    return {
        "type": "session.started",
        "session_id": "s1",
        "mode": mode,
        "source_language": "en",
        "target_languages": targets,
    }


def caption(text: str, start: float, end: float, *, final: bool = True, words: bool = True):
    tokens = text.split()
    step = (end - start) / len(tokens)
    return {
        "type": "caption",
        "chunk": 0,
        "utterance": 0,
        "start": start,
        "end": end,
        "text": text,
        "final": final,
        "words": [
            {
                "word": w,
                "start": round(start + i * step, 3),
                "end": round(start + (i + 1) * step, 3),
            }
            for i, w in enumerate(tokens)
        ]
        if words and final
        else [],
    }


def commit(lang: str, text: str, start: float, end: float, chunk: int = 0) -> dict[str, Any]:
    return {
        "type": "translation.commit",
        "chunk": chunk,
        "first_chunk": chunk,
        "start": start,
        "end": end,
        "lang": lang,
        "text": text,
        "terms_used": [],
    }


def joined(cues: list[Cue], sep: str = " ") -> str:
    return sep.join(c.text.replace("\n", sep) for c in cues)


def assert_well_timed(cues: list[Cue]) -> None:
    for cue in cues:
        assert cue.end > cue.start
    for before, after in zip(cues, cues[1:], strict=False):
        assert after.start >= before.end


def test_final_captions_become_cues_at_their_word_times_and_partials_are_ignored() -> None:
    events = [
        started([]),
        caption("it was the", 0.9, 1.9, final=False),
        caption("it was the best of times", 1.0, 3.0),
        caption("it was the age of wisdom", 4.0, 6.0),
    ]
    cues = cues_for(events, None)
    assert [c.text for c in cues] == ["it was the best of times", "it was the age of wisdom"]
    assert (cues[0].start, cues[0].end) == (1.0, 3.0)
    assert cues[1].start == 4.0
    assert cues_for(events, "en") == cues


def test_a_long_utterance_is_split_into_readable_two_line_cues() -> None:
    text = " ".join(["season of light"] * 20)
    params = SubtitleParams()
    cues = cues_for([started([]), caption(text, 0.0, 30.0)], "en", params)
    assert len(cues) > 3
    assert joined(cues) == text
    for cue in cues:
        lines = cue.text.split("\n")
        assert 1 <= len(lines) <= params.max_lines
        assert all(len(line) <= params.max_line_chars for line in lines)
        assert cue.end - cue.start <= params.max_cue_seconds + 1e-6
    assert_well_timed(cues)


def test_captions_without_word_times_are_spread_over_the_utterance() -> None:
    cues = cues_for([started([]), caption("hello world", 2.0, 4.0, words=False)], "en")
    assert cues == [Cue(2.0, 4.0, "hello world")]


def test_tiny_commits_are_merged_and_empty_commits_skipped() -> None:
    events = [
        started(["de"]),
        commit("de", "Es war", 0.0, 0.96, 0),
        commit("de", "", 0.96, 1.92, 1),  # a chunk without speech
        commit("de", "die beste", 1.92, 2.88, 2),
        commit("de", "aller Zeiten.", 2.88, 3.84, 3),
        commit("zh", "那是最好的时代", 0.0, 3.84, 3),
    ]
    cues = cues_for(events, "de")
    assert [c.text for c in cues] == ["Es war die beste aller Zeiten."]
    assert (cues[0].start, cues[0].end) == (0.0, 3.84)


def test_cjk_translations_join_without_spaces_and_wrap_by_characters() -> None:
    sentence = "那是最好的时代，那是最坏的时代。"
    events = [started(["zh"])] + [
        commit("zh", sentence, i * 3.84, (i + 1) * 3.84, i) for i in range(4)
    ]
    cues = cues_for(events, "zh")
    assert joined(cues, "") == sentence * 4
    params = SubtitleParams()
    for cue in cues:
        assert all(len(line) <= params.max_line_chars_cjk for line in cue.text.split("\n"))
    assert_well_timed(cues)


def test_a_pause_longer_than_the_gap_limit_starts_a_new_cue() -> None:
    events = [started(["de"]), commit("de", "Hallo", 0.0, 0.96), commit("de", "Welt", 5.0, 5.9)]
    assert [c.text for c in cues_for(events, "de")] == ["Hallo", "Welt"]


def test_short_cues_get_reading_time_without_overlapping_the_next() -> None:
    events = [started([]), caption("a", 1.0, 1.1), caption("b", 1.3, 1.4), caption("c", 9.0, 9.1)]
    cues = cues_for(events, "en")
    assert cues[0].end == 1.3  # extended, but stops where the next cue starts
    assert cues[2].end == pytest.approx(9.0 + SubtitleParams().min_cue_seconds)
    assert_well_timed(cues)


def test_unknown_language_lists_the_available_ones() -> None:
    with pytest.raises(UnknownLanguage) as raised:
        cues_for([started(["de", "ja"])], "fr")
    assert raised.value.available == ["en", "de", "ja"]


def test_srt_round_trips_through_a_real_parser() -> None:
    cues = [Cue(1.0, 2.5, "first line\nsecond line"), Cue(3661.2, 3662.0, "an hour later")]
    text = to_srt(cues)
    parsed = list(srt.parse(text))
    assert [p.content for p in parsed] == [c.text for c in cues]
    assert [p.start.total_seconds() for p in parsed] == [1.0, 3661.2]
    assert [p.end.total_seconds() for p in parsed] == [2.5, 3662.0]
    assert [p.index for p in parsed] == [1, 2]
    assert "01:01:01,200 --> 01:01:02,000" in text


def test_vtt_round_trips_and_escapes_markup() -> None:
    cues = [Cue(0.0, 1.0, "BLEU <score> & co --> x"), Cue(1.5, 2.0, "zwei")]
    text = to_vtt(cues)
    assert text.startswith("WEBVTT\n\n")
    parsed = list(webvtt.from_string(text))
    assert [html.unescape(p.raw_text) for p in parsed] == [c.text for c in cues]
    assert [p.start_in_seconds for p in parsed] == [0, 1]
    assert parsed[1].start == "00:00:01.500"
    assert "BLEU &lt;score&gt; &amp; co --&gt; x" in text


def test_empty_session_gives_valid_empty_files() -> None:
    cues = cues_for([started(["de"])], "de")
    assert cues == []
    assert list(webvtt.from_string(to_vtt(cues))) == []
    assert list(srt.parse(to_srt(cues))) == []
