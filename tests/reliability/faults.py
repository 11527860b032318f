"""The fault record every reliability test leaves behind, and the table made from them.

Each test appends one JSON line to ``test-artifacts/reliability/faults.jsonl``:
what was injected, for how long, what the client saw, how long recovery took
and what was lost. ``python -m tests.reliability.faults`` prints them as the
markdown table of docs/reliability.md (the latest record per fault).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from server.client import RasstStream

REPO = Path(__file__).resolve().parents[2]
RECORDS = REPO / "test-artifacts" / "reliability" / "faults.jsonl"


@dataclass
class FaultRecord:
    fault: str
    injected: str
    duration_s: float | None
    client_saw: list[str]
    recovery_s: float | None
    glossaries_lost: int | None = None
    audio_not_done_s: float | None = None
    notes: str = ""
    test: str = ""
    recorded_at: float = field(default_factory=time.time)


def record(entry: FaultRecord) -> None:
    RECORDS.parent.mkdir(parents=True, exist_ok=True)
    with RECORDS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
    print(f"fault record: {json.dumps(asdict(entry), ensure_ascii=False)}")


def audio_not_done(events: list[dict[str, object]]) -> float:
    """Seconds of received audio that no ``chunk.done`` covers (0 for a complete session)."""
    summary = next(e for e in reversed(events) if e["type"] == "session.summary")
    done = [e for e in events if e["type"] == "chunk.done"]
    covered = max((float(e["end"]) for e in done), default=0.0)  # type: ignore[arg-type]
    return round(max(0.0, float(summary["audio_seconds"]) - covered), 3)  # type: ignore[arg-type]


async def send_until(
    stream: RasstStream,
    samples: np.ndarray,
    rate: int,
    stop: asyncio.Event,
    *,
    speed: float = 1.0,
    frame_seconds: float = 0.1,
) -> float:
    """Send audio at ``speed`` × real time, looping the file, until ``stop``; then end.

    Returns the seconds of audio sent.
    """
    frame = int(rate * frame_seconds)
    started = time.monotonic()
    sent = 0
    while not stop.is_set():
        offset = (sent * frame) % (len(samples) - frame)
        await stream.send_audio(samples[offset : offset + frame].tobytes())
        sent += 1
        await asyncio.sleep(max(0.0, started + sent * frame_seconds / speed - time.monotonic()))
    await stream.end()
    return sent * frame_seconds


class EventLog:
    """Events with their arrival time (``time.monotonic()``) on the client."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self._new = asyncio.Event()

    def add(self, event: dict[str, Any]) -> None:
        self.arrivals.append((time.monotonic(), event))
        self._new.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Until ``predicate()`` holds, re-checked after every new event (use a timeout)."""
        while not predicate():
            self._new.clear()
            await self._new.wait()

    def count(self, kind: str) -> int:
        return sum(1 for _, e in self.arrivals if e["type"] == kind)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for _, e in self.arrivals]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.arrivals if e["type"] == kind]

    def between(self, kind: str, start: float, end: float) -> list[dict[str, Any]]:
        return [e for t, e in self.arrivals if e["type"] == kind and start <= t <= end]

    def warning_codes(self) -> list[str]:
        return [e["code"] for e in self.of_type("warning") if e["code"] != "lagging"]


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(f"`{v}`" for v in value) or "none"
    return str(value)


def table(path: Path = RECORDS) -> str:
    latest: dict[str, dict[str, object]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        latest[str(entry["fault"])] = entry
    head = (
        "| fault | injected | for (s) | client saw | recovery (s) | acknowledged glossaries lost "
        "| audio not covered by chunk.done (s) | notes |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    rows = [
        "| "
        + " | ".join(
            _cell(e.get(k))
            for k in (
                "fault",
                "injected",
                "duration_s",
                "client_saw",
                "recovery_s",
                "glossaries_lost",
                "audio_not_done_s",
                "notes",
            )
        )
        + " |"
        for e in latest.values()
    ]
    return head + "\n".join(rows)


if __name__ == "__main__":
    print(table())
