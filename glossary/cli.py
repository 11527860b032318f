"""``rasst glossary ...``: upload, draft, list, export and delete glossaries over the REST API."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

DEFAULT_SERVER = "http://127.0.0.1:8000"
# Uploads of a 10 MiB file to a busy server: generous read timeout, short connect.
_TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=60.0, pool=5.0)
# A draft reads the documents (up to a minute) and may ask the LLM (up to three).
_EXTRACT_TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=60.0, pool=5.0)

glossary_app = typer.Typer(no_args_is_help=True, add_completion=False)

ServerOpt = Annotated[
    str, typer.Option("--server", envvar="RASST_SERVER", help="Base URL of the RASST server.")
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="RASST_API_KEY", help="API key (when auth is enabled)."),
]


def _client(server: str, api_key: str | None, timeout: httpx.Timeout = _TIMEOUT) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)


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
    server: str,
    api_key: str | None,
    method: str,
    path: str,
    *,
    timeout: httpx.Timeout = _TIMEOUT,
    **kwargs: Any,
) -> httpx.Response:
    try:
        with _client(server, api_key, timeout) as client:
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


@glossary_app.command()
def extract(
    files: Annotated[
        list[Path], typer.Argument(exists=True, dir_okay=False, readable=True, show_default=False)
    ],
    lang: Annotated[
        list[str] | None,
        typer.Option(
            "--to",
            "--lang",
            help="Target language of the translations (repeat: --to zh --to de); "
            "--lang is the old name.",
        ),
    ] = None,
    save: Annotated[
        str | None,
        typer.Option(
            "--save", metavar="NAME", help="Also store the draft as a glossary; prints its id."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("-o", "--out", help="Write the draft JSON here (default: stdout)."),
    ] = None,
    max_terms: Annotated[int, typer.Option(min=1, max=500, help="Terms in the draft.")] = 50,
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Statistical draft only, even if an LLM is set up.")
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = None,
) -> None:
    """Draft a glossary from the talk's paper, slides or notes (PDF, PPTX, HTML, Markdown, text).

    The draft (a glossary in the JSON upload format, with each term's evidence) goes to
    stdout or --out; with --save the glossary is also stored and its id printed. Review a
    draft, fill in translations, then `rasst glossary upload draft.json`.
    """
    fields = {"langs": ",".join(lang or []), "max_terms": str(max_terms)}
    if no_llm:
        fields["use_llm"] = "false"
    if save is not None:
        fields.update(save="true", name=save)
    with contextlib.ExitStack() as stack:
        parts = [("file", (path.name, stack.enter_context(path.open("rb")))) for path in files]
        response = _request(
            server,
            api_key,
            "POST",
            "/v1/glossaries/extract",
            files=parts,
            data=fields,
            timeout=_EXTRACT_TIMEOUT,
        )
    draft = response.json()
    _print_draft_summary(draft)
    text = json.dumps(draft, ensure_ascii=False, indent=1)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if save is not None:
        typer.echo(draft["glossary_id"])
    elif out is None:
        typer.echo(text)


def _print_draft_summary(draft: dict[str, Any]) -> None:
    sources = draft["sources"]
    typer.echo(
        f"{draft['name']}: {len(draft['entries'])} terms from {len(sources['files'])} file(s), "
        f"{sources['pages']} pages, {sources['characters']} characters",
        err=True,
    )
    llm = draft["llm"]
    if llm["used"]:
        typer.echo(
            f"  LLM {llm['model']}: kept {llm['kept']}, dropped {llm['dropped']}, "
            f"unchecked {llm['unchecked']} of {llm['candidates']} candidates",
            err=True,
        )
    for warning in draft["warnings"]:
        where = f"{warning['file']}: " if warning.get("file") else ""
        typer.echo(f"  warning {warning['code']}: {where}{warning['message']}", err=True)
    for entry in draft["entries"][:20]:
        targets = "; ".join(
            f"{lang}: {', '.join(v) or '-'}" for lang, v in entry["targets"].items()
        )
        typer.echo(f"  {entry['source']}" + (f"  ({targets})" if targets else ""), err=True)
    if len(draft["entries"]) > 20:
        typer.echo(f"  ... and {len(draft['entries']) - 20} more", err=True)


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
