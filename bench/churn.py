"""Churn: many short concurrent sessions in waves; the gateway's memory per wave.

Starts ``rasst serve`` on loopback (embedded default: captions on, so the speech workers
decode), then runs ``--sessions`` short sessions in waves of ``--wave`` concurrent ones:
each sends ``--seconds`` of real speech in one frame and ``session.end``; every
``--drop-every``-th wave instead vanishes mid-stream (no ``session.end``, no close
handshake) and waits out the resume grace. After each wave it waits until the gateway
holds no session and prints the RSS of its whole process tree (workers included) before
and after the wave. The CI form is tests/reliability/test_churn.py.

    python bench/churn.py                       # 1000 sessions in waves of 40
    python bench/churn.py --sessions 200 --env RASST_CAPTIONS=false
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.churn import speech_pcm, tree_rss_mib, wave  # noqa: E402
from tests.support.live_server import TWO_CITIES, start_server  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--wave", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=0.25, help="speech per session")
    parser.add_argument("--drop-every", type=int, default=5, help="0: never drop")
    parser.add_argument("--lm", type=int, default=2)
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the server (repeatable)"
    )
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    args = parser.parse_args()

    env = {
        "RASST_MAX_SESSIONS": str(max(64, args.wave)),
        "RASST_RESUME_GRACE_SECONDS": "2",
        "RASST_RATE_LIMIT_PER_MINUTE": "0",
        "RASST_MAX_DETACHED_SESSIONS_PER_CALLER": "0",
    }
    env.update(item.split("=", 1) for item in args.env)
    pcm = speech_pcm(TWO_CITIES, args.seconds)
    waves = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), env=env)
        pid = server.process.pid
        try:
            idle = tree_rss_mib(pid)
            print(f"idle tree RSS {idle:.1f} MiB", flush=True)
            left, index = args.sessions, 0
            while left > 0:
                size = min(args.wave, left)
                drop = bool(args.drop_every) and (index + 1) % args.drop_every == 0
                result = await wave(
                    server.ws_url,
                    server.http_url,
                    pid,
                    pcm,
                    index=index,
                    sessions=size,
                    drop=drop,
                    lm=args.lm,
                )
                print(result.line(), flush=True)
                waves.append(result)
                left -= size
                index += 1
        finally:
            server.stop()
    first_after = waves[0].rss_after_mib if waves else idle
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "server_env": env,
        "sessions": args.sessions,
        "wave": args.wave,
        "seconds": args.seconds,
        "idle_rss_mib": round(idle, 1),
        "after_first_wave_rss_mib": round(first_after, 1),
        "final_rss_mib": round(waves[-1].rss_after_mib, 1) if waves else None,
        "failures": sum(sum(w.failures.values()) for w in waves),
        "waves": [
            {
                "kind": w.kind,
                "completed": w.completed,
                "dropped": w.dropped,
                "failures": dict(w.failures),
                "seconds": round(w.seconds, 1),
                "rss_before_mib": round(w.rss_before_mib, 1),
                "rss_after_mib": round(w.rss_after_mib, 1),
            }
            for w in waves
        ],
    }
    print(json.dumps({k: v for k, v in report.items() if k != "waves"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
