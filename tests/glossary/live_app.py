"""The real gateway process (``rasst serve``) with a given glossary database, for crash tests."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

from tests.support.live_server import LiveServer, start_server


@dataclass
class GlossaryServer:
    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.http_url

    @property
    def process(self):  # type: ignore[no-untyped-def]
        return self.server.process

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flush."""
        self.server.stop(signal.SIGKILL)

    def stop(self) -> None:
        self.server.stop()


def start_glossary_server(database_url: str, data_dir: Path, **env: str) -> GlossaryServer:
    # One speech worker without captions: these tests exercise the glossary API.
    server = start_server(
        data_dir,
        "--workers",
        "1",
        env={"RASST_DB_URL": database_url, "RASST_CAPTIONS": "false", **env},
    )
    return GlossaryServer(server)
