from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glossary.cli import glossary_app
from tests.glossary.live_app import GlossaryServer, start_glossary_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GlossaryServer]:
    live = start_glossary_server(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)
    yield live
    live.stop()


def test_upload_prints_the_new_id(server: GlossaryServer, tmp_path: Path) -> None:
    source = tmp_path / "terms.tsv"
    source.write_text("en\tde\nGPU\tGrafikprozessor\n\tleer\n")
    runner = CliRunner()
    result = runner.invoke(glossary_app, ["upload", str(source), "--server", server.url])
    assert result.exit_code == 0, result.output
    gid = result.stdout.strip()
    assert gid.startswith("gl_") and "\n" not in gid
    assert "line 3: empty source term" in result.stderr

    listed = runner.invoke(glossary_app, ["list", "--server", server.url])
    assert gid in listed.stdout
    exported = runner.invoke(
        glossary_app, ["export", gid, "--format", "tsv", "--server", server.url]
    )
    assert "GPU\tGrafikprozessor" in exported.stdout
    assert runner.invoke(glossary_app, ["delete", gid, "--server", server.url]).exit_code == 0
    gone = runner.invoke(glossary_app, ["export", gid, "--server", server.url])
    assert gone.exit_code == 1 and "404" in gone.stderr

    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"alpha,beta,gamma\n1,2,3\n")
    refused = runner.invoke(glossary_app, ["upload", str(bad), "--server", server.url])
    assert refused.exit_code == 1 and "error 422" in refused.stderr
