"""Generate the protocol's JSON schema section of docs/protocol.md from the wire models.

python -m server.schema            # rewrite the generated section in place
python -m server.schema --check    # exit 1 when the document is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from server.protocol import PROTOCOL_VERSION, SERVER_EVENT_ADAPTER, ClientMessage

BEGIN = "<!-- BEGIN GENERATED SCHEMA (python -m server.schema) -->"
END = "<!-- END GENERATED SCHEMA -->"
DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def schemas() -> dict[str, Any]:
    return {
        "protocol_version": PROTOCOL_VERSION,
        "client_message": TypeAdapter(ClientMessage).json_schema(),
        "server_event": SERVER_EVENT_ADAPTER.json_schema(),
    }


def generated_section() -> str:
    body = json.dumps(schemas(), indent=2, ensure_ascii=False)
    return f"{BEGIN}\n```json\n{body}\n```\n{END}"


def render(document: str) -> str:
    start, end = document.index(BEGIN), document.index(END) + len(END)
    return document[:start] + generated_section() + document[end:]


def main(argv: list[str]) -> int:
    current = DOC.read_text(encoding="utf-8")
    updated = render(current)
    if "--check" in argv:
        if updated != current:
            print(f"{DOC} is stale: run python -m server.schema", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
