"""The gateway's own commands: ``serve`` and ``stream``.

The ``rasst`` command (``cli.main``) mounts these beside the glossary, retriever, evaluation and
training commands; ``python -m server.cli serve`` runs the gateway with nothing else imported.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from server.logs import configure_logging

app = typer.Typer(
    name="rasst-gateway",
    help="The RASST gateway: serve it, or stream a file to one.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
DEFAULT_SERVER = "http://127.0.0.1:8000"


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind [RASST_HOST, 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [RASST_PORT, 8000].")] = None,
    llm_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible vLLM endpoint; without it: captions only.")
    ] = None,
    llm_model: Annotated[str | None, typer.Option(help="Model name served at --llm-url.")] = None,
    llm_mode: Annotated[
        str | None,
        typer.Option(
            help="Translator tier: speech (a speech LLM hears the audio), text (a text LLM "
            "translates the captions) or auto (from the served model) [RASST_LLM_MODE, speech]."
        ),
    ] = None,
    retriever_url: Annotated[
        str | None, typer.Option(help="Remote retriever service; default: in process.")
    ] = None,
    db: Annotated[str | None, typer.Option(help="Glossary database URL (SQLAlchemy).")] = None,
    max_pace: Annotated[
        float | None, typer.Option(help="Fastest accepted audio, × real time (default 2).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Speech worker processes (default: one per core).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="Log level [RASST_LOG_LEVEL, info].")
    ] = None,
    json_logs: Annotated[
        bool | None, typer.Option("--json-logs/--no-json-logs", help="Structured JSON logs.")
    ] = None,
) -> None:
    """Run the gateway (embedded default: CPU only, no model download).

    Flags override the RASST_* environment variables; unset flags leave them in force.
    """
    from server.runner import run
    from server.settings import Settings

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "llm_url": llm_url,
        "llm_model": llm_model,
        "llm_mode": llm_mode,
        "retriever_url": retriever_url,
        "db_url": db,
        "max_pace": max_pace,
        "speech_workers": workers,
        "log_level": log_level,
        "log_json": json_logs,
    }
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        console.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, json_logs=settings.log_json)
    run(settings)


@app.command()
def stream(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="16-bit PCM WAV file.")],
    to: Annotated[
        list[str] | None, typer.Option("--to", help="Target language (repeatable).")
    ] = None,
    glossary: Annotated[
        list[str] | None, typer.Option("--glossary", help="Glossary id (repeatable).")
    ] = None,
    lm: Annotated[int, typer.Option(min=1, max=4, help="Chunk size = 0.96 s × lm.")] = 2,
    speed: Annotated[
        float,
        typer.Option(
            min=0,
            help="Playback speed, × real time (0 = as fast as the server accepts; "
            "for faster, `rasst subtitles FILE` runs batch work).",
        ),
    ] = 1.0,
    server: Annotated[str, typer.Option(help="Gateway URL.")] = DEFAULT_SERVER,
    api_key: Annotated[str | None, typer.Option(envvar="RASST_API_KEY", help="API key.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every event as a JSON line.")
    ] = False,
) -> None:
    """Stream a WAV file to the gateway and print live captions and translations."""
    from websockets.exceptions import ConnectionClosed

    from server.client import StreamError, StreamOptions

    options = StreamOptions(
        target_languages=to or [], glossary_ids=glossary or [], lm=lm, api_key=api_key
    )
    try:
        ok = asyncio.run(_stream(file, options, speed, _ws_url(server), as_json))
    except StreamError as exc:
        if as_json:
            print(json.dumps(exc.event), flush=True)
        console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(1) from None
    except OSError as exc:
        console.print(f"[red]cannot reach {server}:[/red] {exc}")
        raise typer.Exit(1) from None
    except ConnectionClosed as exc:
        console.print(f"[red]the connection closed early:[/red] {exc}")
        raise typer.Exit(1) from None
    raise typer.Exit(0 if ok else 1)


def _ws_url(server: str) -> str:
    base = server.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[4:]
    return base if base.endswith("/v1/stream") else base + "/v1/stream"


async def _stream(file: Path, options: Any, speed: float, url: str, as_json: bool) -> bool:
    from server.client import stream_wav

    printer = _EventPrinter(console)
    got_summary = False
    failed = False
    async for event in stream_wav(url, file, options, speed=speed):
        if as_json:
            print(json.dumps(event, ensure_ascii=False), flush=True)
        else:
            printer.show(event)
        if event["type"] == "error" and event.get("fatal"):
            failed = True
        if event["type"] == "session.summary":
            got_summary = True
    return got_summary and not failed


class _EventPrinter:
    """Human-readable live view: final captions and commits as lines, partials on stderr."""

    def __init__(self, out: Console) -> None:
        self._out = out
        self._stdout = Console()

    def show(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "session.started":
            self._out.print(
                f"[dim]session {event['session_id']} · {event['mode']} · "
                f"chunk {event['chunk_seconds']} s · {event['input_sample_rate']} Hz[/dim]"
            )
        elif kind == "caption" and event["final"]:
            self._stdout.print(f"[{event['start']:7.2f}] {event['text']}")
        elif kind == "terms" and event["terms"]:
            found = ", ".join(
                f"{t['source']}→{'/'.join(t['targets'].values()) or '?'}" for t in event["terms"]
            )
            self._stdout.print(f"[{event['start']:7.2f}] [cyan]terms:[/cyan] {found}")
        elif kind == "translation.commit" and event["text"]:
            self._stdout.print(
                f"[{event['start']:7.2f}] [green]{event['lang']}:[/green] {event['text']}"
            )
        elif kind == "session.resumed":
            self._out.print(
                f"[yellow]connection lost; resumed at {event['audio_received_seconds']} s "
                f"({event['replayed']} events replayed)[/yellow]"
            )
        elif kind in {"warning", "error"}:
            self._out.print(f"[yellow]{kind} {event['code']}:[/yellow] {event['message']}")
        elif kind == "session.summary":
            lat = event["latency_ms"]
            self._out.print(
                f"[dim]done: {event['chunks']} chunks, {event['audio_seconds']} s audio, "
                f"latency p50 {lat['p50']} ms p95 {lat['p95']} ms, max lag {event['max_lag_seconds']} s[/dim]"
            )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
