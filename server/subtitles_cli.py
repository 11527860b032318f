"""``rasst subtitles``: subtitles of a recording (batch work) or of a session (download).

* ``rasst subtitles talk.wav --to de --glossary ID -o talk.de.srt``: SOURCE is a file,
  so the recording goes through the live pipeline as batch work
  (``POST /v1/audio/transcriptions``, no pacing limit) with a progress bar.
* ``rasst subtitles SESSION_ID --to de``: SOURCE is a session id (or a viewer token
  with ``--viewer``): download that session's subtitles, live or after it ended, for as
  long as the gateway retains the finished session.

A SOURCE that names an existing file is always a recording; session ids are never
file names.
"""

from __future__ import annotations

import json
import wave
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

DEFAULT_SERVER = "http://127.0.0.1:8000"
# Subtitle files are small and built from memory: short timeouts everywhere.
_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=10.0, pool=5.0)
# Batch work: a long upload, then progress events at least once per processed chunk.
_BATCH_TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=300.0, pool=5.0)
_console = Console(stderr=True)


class Format(StrEnum):
    srt = "srt"
    vtt = "vtt"


def subtitles_command(
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE_OR_SESSION",
            help="A WAV recording (batch work), or a session id (from session.started), "
            "or a viewer token with --viewer.",
        ),
    ],
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            "--lang",
            help="Subtitle language: a target language (translations) or the source; "
            "default: the source language. --lang is the old name.",
        ),
    ] = None,
    glossary: Annotated[
        list[str] | None,
        typer.Option("--glossary", help="Batch work: glossary id (repeatable)."),
    ] = None,
    source_language: Annotated[
        str, typer.Option("--from", help="Batch work: language of the recording.")
    ] = "en",
    format: Annotated[Format, typer.Option("--format", "-f", help="srt or vtt.")] = Format.srt,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    viewer: Annotated[
        bool, typer.Option("--viewer", help="SOURCE is a viewer token, not a session id.")
    ] = False,
    server: Annotated[
        str, typer.Option("--server", envvar="RASST_SERVER", help="Base URL of the RASST server.")
    ] = DEFAULT_SERVER,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="RASST_API_KEY", help="API key (when auth is enabled)."),
    ] = None,
) -> None:
    """Subtitles (SRT or WebVTT) of a WAV recording, or of a live or finished session."""
    path = Path(source)
    if path.is_file():
        text = _batch(path, to, glossary or [], source_language, format, server, api_key)
    else:
        if glossary:
            typer.echo(f"error: {source}: no such file (--glossary is for recordings)", err=True)
            raise typer.Exit(2)
        text = _download(source, to, format, viewer, server, api_key)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def _download(
    session: str, lang: str | None, fmt: Format, viewer: bool, server: str, api_key: str | None
) -> str:
    kind = "view" if viewer else "sessions"
    path = f"/v1/{kind}/{quote(session, safe='')}/subtitles.{fmt.value}"
    params = {"lang": lang} if lang else {}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key and not viewer else {}
    try:
        with httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=_TIMEOUT) as client:
            response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {server}: {exc}", err=True)
        raise typer.Exit(2) from None
    if not response.is_success:
        typer.echo(f"error {response.status_code}: {_message(response)}", err=True)
        raise typer.Exit(1)
    return response.text


def _batch(
    path: Path,
    to: str | None,
    glossaries: list[str],
    source_language: str,
    fmt: Format,
    server: str,
    api_key: str | None,
) -> str:
    """Upload the recording for batch work; show its progress; return the subtitles."""
    data: dict[str, Any] = {
        "response_format": fmt.value,
        "stream": "true",
        "language": source_language,
        "glossary": glossaries,
    }
    if to and to != source_language:
        data["target_language"] = to
        data["subtitle_language"] = to
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    progress = Progress(
        TextColumn("[dim]{task.description}[/dim]"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s audio"),
        TimeElapsedColumn(),
        console=_console,
    )
    try:
        with (
            httpx.Client(
                base_url=server.rstrip("/"), headers=headers, timeout=_BATCH_TIMEOUT
            ) as client,
            path.open("rb") as audio,
            client.stream(
                "POST",
                "/v1/audio/transcriptions",
                data=data,
                files={"file": (path.name, audio, "audio/wav")},
            ) as response,
            progress,
        ):
            if not response.is_success:
                response.read()
                typer.echo(f"error {response.status_code}: {_message(response)}", err=True)
                raise typer.Exit(1)
            task = progress.add_task(path.name, total=_seconds(path))
            for event in _sse_events(response.iter_lines()):
                if event["type"] == "rasst.progress":
                    progress.update(task, completed=event["seconds"], total=event["total_seconds"])
                elif event["type"] == "error":
                    error = event.get("error", {})
                    progress.stop()
                    typer.echo(f"error: {error.get('code')}: {error.get('message')}", err=True)
                    raise typer.Exit(1)
                elif event["type"] == "transcript.text.done":
                    return str(event["rasst"]["subtitles"])
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {server}: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo("error: the server ended the batch job without a result", err=True)
    raise typer.Exit(1)


def _seconds(path: Path) -> float:
    """The recording's length for the bar (the server checks the file; 1 if unreadable)."""
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (wave.Error, EOFError, OSError):
        return 1.0


def _sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data: "):
            yield json.loads(line[6:])


def _message(response: httpx.Response) -> str:
    try:
        error: Any = response.json().get("error", {})
    except ValueError:
        return response.text[:500]
    return f"{error.get('code', '')}: {error.get('message', '')}"
