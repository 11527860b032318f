"""Soak: N concurrent real-time speakers for a long time against one embedded gateway.

Starts ``rasst serve`` on loopback (embedded default unless ``--env`` says otherwise),
streams real speech (``two_cities_16k.wav`` looped) from N clients at real time for
``--minutes``, and reports lost audio, chunk latency p50/p95/p99, lag, server memory
over time and every error/warning code (see tests/support/soak.py).

    python bench/soak.py --sessions 64 --minutes 10 --env RASST_CAPTIONS=false
    python bench/soak.py --sessions 8 --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.client import read_wav  # noqa: E402
from tests.support.live_server import TWO_CITIES, start_server  # noqa: E402
from tests.support.soak import soak  # noqa: E402


def upload(base_url: str, path: Path) -> str:
    with path.open("rb") as handle:
        response = httpx.post(
            f"{base_url}/v1/glossaries",
            files={"file": (path.name, handle)},
            data={"name": "soak"},
            timeout=120,
        )
    response.raise_for_status()
    return str(response.json()["id"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--lm", type=int, default=2)
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)"
    )
    parser.add_argument(
        "--glossary", type=Path, help="upload this glossary and use it in every session"
    )
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args()

    _, speech = read_wav(TWO_CITIES)
    env = {"RASST_MAX_SESSIONS": str(max(64, args.sessions))}
    env.update(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), env=env)
        try:
            glossary_ids: tuple[str, ...] = ()
            if args.glossary:
                glossary_ids = (await asyncio.to_thread(upload, server.http_url, args.glossary),)
            report = await soak(
                server.ws_url,
                speech,
                sessions=args.sessions,
                seconds=args.minutes * 60,
                lm=args.lm,
                server_pid=server.process.pid,
                glossary_ids=glossary_ids,
            )
        finally:
            server.stop()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "server_env": env,
        "lm": args.lm,
        "glossary": str(args.glossary) if args.glossary else None,
        **report.as_dict(),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
