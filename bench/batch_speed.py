"""How much faster than real time batch work runs on this machine.

Starts ``rasst serve`` (embedded default: VAD + Whisper captions, no LLM) on loopback and
posts a recording to ``POST /v1/audio/transcriptions`` (the path ``rasst subtitles FILE``
takes), ``--repeat`` times; reports audio seconds, wall seconds and the real-time factor
(audio / wall; above 1 is faster than real time), and the WER of the captions against the
reading's text when the recording is the shared ``two_cities_16k.wav``.

    python bench/batch_speed.py [--wav PATH] [--repeat 3] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import wave
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.asr.wer import wer  # noqa: E402
from tests.support.live_server import TWO_CITIES, start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wav", type=Path, default=TWO_CITIES)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    with wave.open(str(args.wav)) as wav:
        audio_seconds = wav.getnframes() / wav.getframerate()
    reference = args.wav.with_suffix(".txt")
    extra = ["--workers", str(args.workers)] if args.workers else []
    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(Path(data_dir), *extra)
        try:
            runs = []
            for _ in range(args.repeat):
                started = time.monotonic()
                response = httpx.post(
                    f"{server.http_url}/v1/audio/transcriptions",
                    files={"file": (args.wav.name, args.wav.read_bytes(), "audio/wav")},
                    data={"response_format": "json"},
                    timeout=httpx.Timeout(30.0, read=600.0),
                )
                wall = time.monotonic() - started
                response.raise_for_status()
                text = response.json()["text"]
                runs.append(
                    {
                        "wall_seconds": round(wall, 2),
                        "real_time_factor": round(audio_seconds / wall, 2),
                        "wer": round(wer(reference.read_text(), text), 3)
                        if reference.exists()
                        else None,
                    }
                )
        finally:
            server.stop()
    print(
        json.dumps(
            {
                "wav": str(args.wav),
                "audio_seconds": round(audio_seconds, 2),
                "machine": platform.processor() or platform.machine(),
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
