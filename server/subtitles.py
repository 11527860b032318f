"""Subtitle export: a session's events → timed cues → SRT or WebVTT text.

Pure functions, no I/O: the web routes and the CLI feed them the events a
session published to its feed (live or finished).

Where cues come from:
- the source language: final ``caption`` events (one per utterance), split at
  the caption's word times when it carries them;
- a target language: ``translation.commit`` events of that language, timed by
  the chunk run they cover (``start``/``end`` span ``first_chunk..chunk``).

Both become a stream of timed tokens that one packer turns into readable cues:
at most two lines per cue, a maximum cue duration, a break at pauses and after
sentence ends. That both splits long utterances and merges the tiny commits a
chunk-by-chunk translator produces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

SubtitleFormat = Literal["srt", "vtt"]

# Scripts written without spaces between words: one character is one token.
_CJK = (
    "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3190-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
)
_TOKEN = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_WIDE = re.compile(rf"[{_CJK}]")
_SENTENCE_END = re.compile(r"[.!?…。！？]['\"”’)\]」』]*$")


@dataclass(frozen=True, slots=True)
class SubtitleParams:
    """Readability limits (defaults follow common broadcast subtitle guidelines)."""

    max_line_chars: int = 42
    # Wide characters take about twice the room of Latin ones.
    max_line_chars_cjk: int = 20
    max_lines: int = 2
    max_cue_seconds: float = 7.0
    min_cue_seconds: float = 0.7
    # A silence longer than this ends a cue even when it has room left.
    max_gap_seconds: float = 1.2
    # Break after a sentence end once a cue is at least this full (fraction of its characters).
    sentence_break_fill: float = 0.5


@dataclass(frozen=True, slots=True)
class Cue:
    start: float
    end: float
    text: str  # lines separated by "\n"


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    start: float
    end: float
    space_before: bool

    @property
    def wide(self) -> bool:
        return _is_wide(self.text)


def _is_wide(text: str) -> bool:
    return bool(_WIDE.match(text))


class UnknownLanguage(ValueError):
    """The session has no captions or translation in the requested language."""

    def __init__(self, lang: str, available: Sequence[str]) -> None:
        super().__init__(f"no subtitles in {lang!r}; available: {', '.join(available)}")
        self.lang = lang
        self.available = list(available)


def session_languages(events: Iterable[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """(source language, target languages) announced by the session's ``session.started``."""
    for event in events:
        if event.get("type") == "session.started":
            return str(event["source_language"]), [str(x) for x in event["target_languages"]]
    return "en", []


def cues_for(
    events: Sequence[Mapping[str, Any]], lang: str | None, params: SubtitleParams | None = None
) -> list[Cue]:
    """Cues in ``lang`` (default: the source language) from a session's events."""
    params = params or SubtitleParams()
    source, targets = session_languages(events)
    lang = lang or source
    if lang == source:
        return _pack(_caption_tokens(events), params, split_runs=True)
    if lang in targets:
        return _pack(_commit_tokens(events, lang), params, split_runs=False)
    raise UnknownLanguage(lang, [source, *targets])


def to_srt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{n}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n{c.text}\n"
        for n, c in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: Sequence[Cue]) -> str:
    blocks = [
        f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n{_vtt_escape(c.text)}\n" for c in cues
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def render(cues: Sequence[Cue], fmt: SubtitleFormat) -> str:
    return to_srt(cues) if fmt == "srt" else to_vtt(cues)


# -- events -> timed tokens ----------------------------------------------------


def _caption_tokens(events: Iterable[Mapping[str, Any]]) -> list[list[_Token]]:
    runs: list[list[_Token]] = []
    for event in events:
        if event.get("type") != "caption" or not event.get("final"):
            continue
        text = _clean(str(event.get("text", "")))
        if not text:
            continue
        words = event.get("words") or []
        # Word times are exact; use them when they spell the caption's text.
        if words and [str(w["word"]) for w in words] == text.split(" "):
            runs.append(
                [_Token(str(w["word"]), float(w["start"]), float(w["end"]), True) for w in words]
            )
        else:
            runs.append(_spread(text, float(event["start"]), float(event["end"])))
    return runs


def _commit_tokens(events: Iterable[Mapping[str, Any]], lang: str) -> list[list[_Token]]:
    runs: list[list[_Token]] = []
    for event in events:
        if event.get("type") != "translation.commit" or event.get("lang") != lang:
            continue
        text = _clean(str(event.get("text", "")))
        if text:  # chunks without speech commit empty text
            runs.append(_spread(text, float(event["start"]), float(event["end"])))
    return runs


def _spread(text: str, start: float, end: float) -> list[_Token]:
    """Tokens of ``text`` with times interpolated by character position over [start, end]."""
    matches = list(_TOKEN.finditer(text))
    total = max(1, len(text))
    span = max(0.0, end - start)
    tokens: list[_Token] = []
    for m in matches:
        # A run's first token follows the previous run with a space, except in CJK text.
        space = text[m.start() - 1].isspace() if m.start() > 0 else not _is_wide(m.group())
        tokens.append(
            _Token(
                m.group(),
                start + span * m.start() / total,
                start + span * m.end() / total,
                space,
            )
        )
    return tokens


def _clean(text: str) -> str:
    # A blank line would end an SRT cue early; cue text is re-wrapped anyway.
    return " ".join(text.split())


# -- timed tokens -> cues -----------------------------------------------------


def _pack(
    runs: Sequence[Sequence[_Token]], params: SubtitleParams, *, split_runs: bool
) -> list[Cue]:
    """Greedy cue filling. With ``split_runs`` every run (a caption utterance, which
    ends at a pause) starts a new cue; otherwise a run end (a commit) is a soft break,
    like a sentence end."""
    # Runs stay whole and in time order; tokens of two runs are never interleaved.
    ordered = sorted((run for run in runs if run), key=lambda run: run[0].start)
    cues: list[Cue] = []
    current: list[_Token] = []
    for run in ordered:
        for index, token in enumerate(run):
            run_start = index == 0
            if current and (
                (run_start and split_runs) or _must_break(current, token, run_start, params)
            ):
                cues.append(_cue(current, params))
                current = []
            current.append(token)
    if current:
        cues.append(_cue(current, params))
    return _fix_times(cues, params)


def _must_break(
    current: list[_Token], token: _Token, run_start: bool, params: SubtitleParams
) -> bool:
    limit = _line_limit(current + [token], params) * params.max_lines
    if len(_join(current + [token])) > limit:
        return True
    if token.end - current[0].start > params.max_cue_seconds:
        return True
    if token.start - current[-1].end > params.max_gap_seconds:
        return True
    filled = len(_join(current)) >= params.sentence_break_fill * limit
    return filled and (run_start or bool(_SENTENCE_END.search(current[-1].text)))


def _cue(tokens: list[_Token], params: SubtitleParams) -> Cue:
    return Cue(tokens[0].start, tokens[-1].end, "\n".join(_wrap(tokens, params)))


def _wrap(tokens: list[_Token], params: SubtitleParams) -> list[str]:
    """One line, or two balanced lines broken at the token boundary nearest the middle."""
    limit = _line_limit(tokens, params)
    whole = _join(tokens)
    if len(whole) <= limit or len(tokens) < 2:
        return [whole]
    best = min(
        range(1, len(tokens)),
        key=lambda i: (
            max(len(_join(tokens[:i])), len(_join(tokens[i:]))) > limit,
            abs(len(_join(tokens[:i])) - len(_join(tokens[i:]))),
        ),
    )
    return [_join(tokens[:best]), _join(tokens[best:])]


def _join(tokens: Sequence[_Token]) -> str:
    parts: list[str] = []
    for i, token in enumerate(tokens):
        if i > 0 and token.space_before:
            parts.append(" ")
        parts.append(token.text)
    return "".join(parts)


def _line_limit(tokens: Sequence[_Token], params: SubtitleParams) -> int:
    wide = sum(t.wide for t in tokens)
    return params.max_line_chars_cjk if wide * 2 > len(tokens) else params.max_line_chars


def _fix_times(cues: list[Cue], params: SubtitleParams) -> list[Cue]:
    """Give short cues time to be read without overlapping the next; keep times increasing.

    Works in whole milliseconds, the resolution of both formats, so rounding can
    never make a cue empty or out of order.
    """
    starts = [round(c.start * 1000) for c in cues]
    ends = [round(c.end * 1000) for c in cues]
    min_ms = round(params.min_cue_seconds * 1000)
    fixed: list[Cue] = []
    previous_end = 0
    for i, cue in enumerate(cues):
        start = max(starts[i], previous_end)
        end = max(ends[i], start + min_ms)
        if i + 1 < len(cues):
            end = min(end, starts[i + 1])
        end = max(end, start + 1)
        fixed.append(Cue(start / 1000, end / 1000, cue.text))
        previous_end = end
    return fixed


def _clock(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _vtt_escape(text: str) -> str:
    # Cue text is markup in WebVTT; "-->" may not appear in it at all.
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("-->", "--&gt;")
