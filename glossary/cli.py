"""``rasst glossary ...``: upload, list, export and delete glossaries over the REST API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

DEFAULT_SERVER = "http://127.0.0.1:8000"
# Uploads of a 10 MiB file to a busy server: generous read timeout, short connect.
_TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=60.0, pool=5.0)

glossary_app = typer.Typer(no_args_is_help=True, add_completion=False)

ServerOpt = Annotated[
    str, typer.Option("--server", envvar="RASST_SERVER", help="Base URL of the RASST server.")
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="RASST_API_KEY", help="API key (when auth is enabled)."),
]


def _client(server: str, api_key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=_TIMEOUT)


def _fail(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        error: Any = response.json().get("error", {})
    except ValueError:
        error = {"message": response.text[:500]}
    typer.echo(f"error {response.status_code}: {error.get('message', '')}", err=True)
    report = (
        (error.get("detail") or {}).get("report") if isinstance(error.get("detail"), dict) else None
    )
    if report:
        for row in report.get("skipped", [])[:20]:
            where = f"line {row['line']}" if row.get("line") else row.get("item") or "-"
            typer.echo(f"  {where}: {row['reason']}", err=True)
    raise typer.Exit(1)


def _request(
    server: str, api_key: str | None, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    try:
        with _client(server, api_key) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {server}: {exc}", err=True)
        raise typer.Exit(2) from None
    _fail(response)
    return response


@glossary_app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    server: ServerOpt = DEFAULT_SERVER,
    name: Annotated[
        str | None, typer.Option(help="Glossary name (default: from the file).")
    ] = None,
    format: Annotated[
        str | None, typer.Option("--format", help="csv, tsv, json, tbx or tmx (default: detect).")
    ] = None,
    source_language: Annotated[
        str | None, typer.Option(help="Override the source language.")
    ] = None,
    target_language: Annotated[
        str | None, typer.Option(help="Target language of a headerless two-column file.")
    ] = None,
    api_key: KeyOpt = None,
) -> None:
    """Upload FILE; prints the new glossary id on stdout and the import report on stderr."""
    fields = {
        k: v
        for k, v in {
            "name": name,
            "format": format,
            "source_language": source_language,
            "target_language": target_language,
        }.items()
        if v
    }
    with file.open("rb") as handle:
        response = _request(
            server,
            api_key,
            "POST",
            "/v1/glossaries",
            files={"file": (file.name, handle)},
            data=fields,
        )
    body = response.json()
    report = body["report"]
    typer.echo(
        f"{body['name']}: {report['entries_accepted']} entries, "
        f"{report['merged_duplicates']} merged duplicates, {len(report['skipped'])} skipped",
        err=True,
    )
    for row in report["skipped"][:20]:
        where = f"line {row['line']}" if row.get("line") else row.get("item") or "-"
        typer.echo(f"  skipped {where}: {row['reason']}", err=True)
    typer.echo(body["id"])


@glossary_app.command("list")
def list_(server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None) -> None:
    """List this tenant's glossaries: id, version, entries, name."""
    response = _request(server, api_key, "GET", "/v1/glossaries", params={"limit": 1000})
    for item in response.json()["items"]:
        typer.echo(f"{item['id']}\tv{item['version']}\t{item['entry_count']}\t{item['name']}")


@glossary_app.command()
def export(
    glossary_id: str,
    server: ServerOpt = DEFAULT_SERVER,
    format: Annotated[str, typer.Option("--format", help="csv, tsv, json, tbx or tmx.")] = "csv",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Default: stdout.")] = None,
    api_key: KeyOpt = None,
) -> None:
    """Download a glossary as a file."""
    response = _request(
        server, api_key, "GET", f"/v1/glossaries/{glossary_id}/export", params={"format": format}
    )
    if output is None:
        sys.stdout.buffer.write(response.content)
    else:
        output.write_bytes(response.content)


@glossary_app.command()
def delete(glossary_id: str, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None) -> None:
    """Delete a glossary."""
    _request(server, api_key, "DELETE", f"/v1/glossaries/{glossary_id}")


@glossary_app.command()
def show(glossary_id: str, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = None) -> None:
    """Print a glossary's metadata and first entries as JSON."""
    response = _request(server, api_key, "GET", f"/v1/glossaries/{glossary_id}")
    typer.echo(json.dumps(response.json(), ensure_ascii=False, indent=2))
