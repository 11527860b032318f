"""``rasst subtitles SESSION_ID``: download a session's subtitles (SRT or WebVTT) over REST.

Works while the session runs (the subtitles so far) and after it ended, for as
long as the gateway retains the finished session.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

DEFAULT_SERVER = "http://127.0.0.1:8000"
# Subtitle files are small and built from memory: short timeouts everywhere.
_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=10.0, pool=5.0)


class Format(StrEnum):
    srt = "srt"
    vtt = "vtt"


def subtitles_command(
    session: Annotated[
        str,
        typer.Argument(help="Session id (from session.started), or a viewer token with --viewer."),
    ],
    lang: Annotated[
        str | None,
        typer.Option(help="Source language for captions, or a target language; default: source."),
    ] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="srt or vtt.")] = Format.srt,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    viewer: Annotated[
        bool, typer.Option("--viewer", help="SESSION is a viewer token, not a session id.")
    ] = False,
    server: Annotated[
        str, typer.Option("--server", envvar="RASST_SERVER", help="Base URL of the RASST server.")
    ] = DEFAULT_SERVER,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar="RASST_API_KEY", help="API key (when auth is enabled)."),
    ] = None,
) -> None:
    """Download a session's subtitles as SRT or WebVTT (live or after the session ended)."""
    kind = "view" if viewer else "sessions"
    path = f"/v1/{kind}/{quote(session, safe='')}/subtitles.{format.value}"
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
    if output is None:
        typer.echo(response.text, nl=False)
    else:
        output.write_text(response.text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def _message(response: httpx.Response) -> str:
    try:
        error: Any = response.json().get("error", {})
    except ValueError:
        return response.text[:500]
    return f"{error.get('code', '')}: {error.get('message', '')}"
