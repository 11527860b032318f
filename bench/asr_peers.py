"""Streaming captions side by side: RASST, WhisperLiveKit and WhisperLive on one machine.

Same audio (``two_cities_16k.wav``, 44 s of real read speech), same Whisper model directory
(tiny.en or base from the pinned wheels, see ``asr_common.whisper_model_dir``), same client
behaviour: N concurrent clients (N = ``--levels``, starts spread over one second) each stream
the file at real time in 100 ms frames of 16-bit PCM, over loopback. Per system and level:

* **WER** of each client's final text against the ``.txt`` reference (``asr_common.normalise``);
* **word → first appearance**: for every reference word, the time its first correct appearance
  in the client's running transcript (found by aligning each new transcript against the
  reference) comes after the word's end in the audio; p50 / p95 over all words of all clients.
  Word end times come from faster-whisper base offline with ``word_timestamps=True`` on the
  same file (computed once, cached in ``.cache/asr_bench``), projected onto the reference by
  alignment; words never shown are counted as "missed";
* **final after end**: from the last audio frame sent to the last change of the text (max over
  clients), and the system's end-of-stream signal where it has one;
* **sustained**: every client's final text within ``--final-slack`` (2 s) of the audio end, p95
  latency ≤ ``--chunk-seconds`` (1.92 s, RASST's default chunk) + 1 s, and no errors.

A system whose final text comes more than ``--behind-s`` (10 s) after the audio end (it fell
behind real time) or that fails is not tried at higher levels.

Servers: each system runs as a subprocess on a free loopback port; all are started (and warmed
up with one 5 s stream) first, then the levels run interleaved across systems (1 client for each
system, then 2, …) so that load from other jobs on a shared machine hits all alike.

* RASST: ``--rasst-url ws://…/v1/stream`` (running already) or started from ``--rasst-repo``
  (default: this checkout) with ``--rasst-python -m server.cli serve`` (the repo's code, not
  the installed one); ``--rasst-env KEY=VALUE`` passes settings (e.g. its Whisper model
  directory once the Whisper front end exists). Scored on ``caption`` events (partials
  replaced per ``utterance``), done at ``session.summary``.
* WhisperLiveKit (``--wlk-venv``, 0.2.x): ``whisperlivekit-server --backend faster-whisper
  --backend-policy localagreement --model_dir DIR --lan en --pcm-input`` with a local warm-up
  file and ``HF_HUB_OFFLINE=1``; WebSocket ``/asr``, full-state messages (``lines`` +
  ``buffer_transcription``), an empty frame ends, ``ready_to_stop`` is the end.
* WhisperLive (``--wl-venv``, 0.10.x): ``TranscriptionServer().run(backend="faster_whisper",
  faster_whisper_custom_model_path=DIR, single_model=True, max_clients=16)``; options
  ``audio_format=int16``, ``use_vad=True``, all segments sent. It stops transcribing at
  ``END_OF_AUDIO``, so the client sends that only once it has caught up (its answers, one per
  pass, repeat the same text for 3 s) or it has sent nothing for ``--settle`` s (its own client
  also waits for silence before disconnecting).

Each peer runs with its own defaults otherwise (WhisperLiveKit: beam 5 and word timestamps;
WhisperLive: beam 5, CTranslate2's default thread count), RASST with its settings.

    .venv/bin/python bench/asr_peers.py --model tiny.en --levels 1 2 4 8
    .venv/bin/python bench/asr_peers.py --systems rasst --rasst-url ws://127.0.0.1:8000/v1/stream
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.asr_common import (  # noqa: E402
    RATE,
    ROOT,
    TWO_CITIES,
    StreamRecord,
    appearance_latencies,
    edit_ops,
    first_appearances,
    load_average,
    markdown_table,
    normalise,
    pace_frames,
    percentile,
    read_wav16,
    stream_rasst,
    whisper_model_dir,
    word_errors,
)

CACHE = ROOT / ".cache" / "asr_bench"
FRAME_SECONDS = 0.1


# -- reference word times -----------------------------------------------------------------


def reference_word_ends(wav: Path, reference: str, model: str = "base") -> list[float | None]:
    """End time of every normalised reference word (None where the alignment has no match)."""
    digest = hashlib.sha1(wav.read_bytes() + reference.encode() + model.encode()).hexdigest()[:12]
    path = CACHE / f"word_ends-{wav.stem}-{digest}.json"
    if not path.exists():
        from faster_whisper import WhisperModel

        whisper = WhisperModel(str(whisper_model_dir(model)), device="cpu", compute_type="int8",
                               cpu_threads=1)  # fmt: skip
        audio = read_wav16(wav).astype(np.float32) / 32768.0
        segments, _ = whisper.transcribe(audio, language="en", beam_size=5, word_timestamps=True)
        timed = [(token, float(w.end)) for s in segments for w in s.words or ()
                 for token in normalise(w.word)]  # fmt: skip
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(timed))
    timed = [(str(t), float(e)) for t, e in json.loads(path.read_text())]
    ref = normalise(reference)
    ends: list[float | None] = [None] * len(ref)
    for op, i, j in edit_ops(ref, [t for t, _ in timed]):
        if op == "equal":
            ends[i] = timed[j][1]
    return ends


# -- clients --------------------------------------------------------------------------------


async def stream_wlk(
    url: str, pcm: np.ndarray, *, final_timeout: float, **_: object
) -> StreamRecord:
    """WhisperLiveKit ``/asr`` with ``--pcm-input``: s16le frames; empty frame = end."""
    from websockets.asyncio.client import connect

    snapshots: list[tuple[float, str]] = []
    text = ""
    done: float | None = None
    error: str | None = None
    t0 = time.monotonic()

    def clock() -> float:
        return time.monotonic() - t0

    async with connect(url, max_size=2**24, open_timeout=30) as ws:

        async def reader() -> None:
            nonlocal text, done, error
            async for message in ws:
                if isinstance(message, bytes):
                    continue
                event = json.loads(message)
                if event.get("type") == "ready_to_stop":
                    done = clock()
                    return
                if event.get("type") == "error" or event.get("error"):
                    error = str(event.get("error"))
                if "lines" in event:
                    parts = [str(line.get("text") or "") for line in event["lines"]]
                    parts.append(str(event.get("buffer_transcription") or ""))
                    new = " ".join(p.strip() for p in parts if p.strip())
                    if new != text:
                        text = new
                        snapshots.append((clock(), text))

        read_task = asyncio.create_task(reader())
        t0 = time.monotonic()

        async def send(frame: np.ndarray) -> None:
            await ws.send(frame.tobytes())

        await pace_frames(send, pcm, 1.0, FRAME_SECONDS, clock)
        audio_end = clock()
        await ws.send(b"")
        try:
            await asyncio.wait_for(read_task, final_timeout)
        except TimeoutError:
            error = error or f"no ready_to_stop within {final_timeout:.0f} s"
            read_task.cancel()
    return StreamRecord(snapshots, text, len(pcm) / RATE, audio_end, done, error)


async def stream_wl(
    url: str, pcm: np.ndarray, *, final_timeout: float, settle: float, model_dir: str, **_: object
) -> StreamRecord:
    """WhisperLive: JSON options, int16 frames, ``END_OF_AUDIO`` once the text settled."""
    from websockets.asyncio.client import connect

    completed: dict[float, str] = {}
    pending: dict[float, str] = {}
    snapshots: list[tuple[float, str]] = []
    text = ""
    error: str | None = None
    t0 = time.monotonic()
    last_message = 0.0
    unchanged_messages = 0  # messages since the text last changed

    def clock() -> float:
        return time.monotonic() - t0

    async with connect(url, max_size=2**24, open_timeout=30) as ws:
        uid = str(uuid.uuid4())
        await ws.send(json.dumps({
            "uid": uid, "language": "en", "task": "transcribe", "model": model_dir,
            "use_vad": True, "send_last_n_segments": 1000, "audio_format": "int16",
        }))  # fmt: skip
        async with asyncio.timeout(120):
            while True:
                event = json.loads(await ws.recv())
                if event.get("message") == "SERVER_READY":
                    break
                if event.get("status") in ("WAIT", "ERROR"):
                    raise RuntimeError(f"WhisperLive refused the client: {event}")

        async def reader() -> None:
            nonlocal text, error, last_message, unchanged_messages
            async for message in ws:
                event = json.loads(message)
                last_message = clock()
                unchanged_messages += 1
                if event.get("status") == "ERROR":
                    error = str(event.get("message"))
                if event.get("message") == "DISCONNECT":
                    return
                if "segments" not in event:
                    continue
                pending.clear()
                for seg in event["segments"]:
                    start = round(float(seg["start"]), 3)
                    (completed if seg.get("completed") else pending)[start] = str(seg["text"])
                last_done = max(completed, default=-1.0)
                parts = [completed[s] for s in sorted(completed)]
                parts += [pending[s] for s in sorted(pending) if s > last_done]
                new = " ".join(p.strip() for p in parts if p.strip())
                if new != text:
                    text = new
                    snapshots.append((clock(), text))
                    unchanged_messages = 0

        read_task = asyncio.create_task(reader())
        t0 = time.monotonic()

        async def send(frame: np.ndarray) -> None:
            await ws.send(frame.tobytes())

        await pace_frames(send, pcm, 1.0, FRAME_SECONDS, clock)
        audio_end = clock()
        # It stops transcribing at END_OF_AUDIO. It answers after every pass, changed or not,
        # so it has caught up when passes keep returning the same text; wait (bounded) for
        # that: no change for 3 s over at least 3 answers, or no answer at all for ``settle``.
        unchanged_messages = 0
        while clock() < audio_end + final_timeout and not read_task.done():
            now = clock()
            last = max(snapshots[-1][0] if snapshots else 0.0, audio_end)
            if unchanged_messages >= 3 and now - last >= 3.0:
                break
            if now - max(last_message, audio_end) >= settle:
                break
            await asyncio.sleep(0.2)
        await ws.send(b"END_OF_AUDIO")
        try:
            await asyncio.wait_for(read_task, 15)
        except TimeoutError:
            read_task.cancel()
        if clock() >= audio_end + final_timeout:
            error = error or f"text still changing {final_timeout:.0f} s after the audio end"
    # No end-of-stream signal: the text is final at its last change.
    return StreamRecord(snapshots, text, len(pcm) / RATE, audio_end, None, error)


async def stream_rasst_client(url: str, pcm: np.ndarray, *, final_timeout: float, lm: int,
                              **_: object) -> StreamRecord:  # fmt: skip
    return await stream_rasst(url, pcm, pace=1.0, lm=lm, final_timeout=final_timeout)


CLIENTS = {"rasst": stream_rasst_client, "wlk": stream_wlk, "wl": stream_wl}
NAMES = {"rasst": "RASST", "wlk": "WhisperLiveKit", "wl": "WhisperLive"}


# -- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # its own session: only what we started
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _wait_port(server: Server, port: int, timeout: float, http_path: str | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process is not None
        if server.process.poll() is not None:
            log = server.log_path.read_text(errors="replace")[-3000:] if server.log_path else ""
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{log}")
        try:
            if http_path is None:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            elif httpx.get(f"http://127.0.0.1:{port}{http_path}", timeout=2).status_code == 200:
                return
        except (OSError, httpx.TransportError):
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f} s (log {server.log_path})")


def _spawn(
    name: str, cmd: list[str], port: int, env: dict[str, str], cwd: Path, logs: Path
) -> Server:
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    return Server(name, "", process, log_path)


def start_rasst(args: argparse.Namespace, logs: Path) -> Server:
    if args.rasst_url:
        return Server("rasst", args.rasst_url)
    port = free_port()
    env = {"RASST_DATA_DIR": str(logs / "rasst-data"), "RASST_MAX_SESSIONS": "256",
           "PYTHONPATH": str(args.rasst_repo)}  # fmt: skip
    env.update(kv.split("=", 1) for kv in args.rasst_env)  # type: ignore[arg-type]
    server = _spawn("rasst", [args.rasst_python, "-m", "server.cli", "serve", "--host",
                              "127.0.0.1", "--port", str(port)], port, env, args.rasst_repo, logs)  # fmt: skip
    server.url = f"ws://127.0.0.1:{port}/v1/stream"
    _wait_port(server, port, 120, "/readyz")
    return server


def start_wlk(args: argparse.Namespace, logs: Path, model_dir: Path) -> Server:
    port = free_port()
    exe = str(args.wlk_venv / "bin" / "whisperlivekit-server")
    cmd = [exe, "--host", "127.0.0.1", "--port", str(port), "--backend", "faster-whisper",
           "--backend-policy", "localagreement", "--model_dir", str(model_dir), "--lan", "en",
           "--pcm-input", "--warmup-file", str(TWO_CITIES)]  # fmt: skip
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    server = _spawn("wlk", cmd, port, env, logs, logs)
    server.url = f"ws://127.0.0.1:{port}/asr"
    _wait_port(server, port, 300, "/health")
    return server


def start_wl(args: argparse.Namespace, logs: Path, model_dir: Path) -> Server:
    port = free_port()
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from whisper_live.server import TranscriptionServer\n"
        f"TranscriptionServer().run('127.0.0.1', {port}, backend='faster_whisper', "
        f"faster_whisper_custom_model_path={str(model_dir)!r}, single_model=True, "
        "max_clients=16, max_connection_time=900)\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    server = _spawn("wl", [str(args.wl_venv / "bin" / "python"), "-c", code], port, env, logs, logs)
    server.url = f"ws://127.0.0.1:{port}"
    _wait_port(server, port, 120)
    return server


# -- one level --------------------------------------------------------------------------------


async def run_level(system: str, url: str, pcm: np.ndarray, n: int, args: argparse.Namespace,
                    model_dir: Path) -> list[StreamRecord | BaseException]:  # fmt: skip
    client = CLIENTS[system]
    rng = random.Random(n)

    async def one(delay: float) -> StreamRecord:
        await asyncio.sleep(delay)
        return await client(url, pcm, final_timeout=args.final_timeout, settle=args.settle,
                            model_dir=str(model_dir), lm=args.lm)  # fmt: skip

    budget = len(pcm) / RATE + 1 + args.final_timeout + args.settle + 60
    return await asyncio.wait_for(
        asyncio.gather(*(one(rng.uniform(0, 1.0)) for _ in range(n)), return_exceptions=True),
        budget,
    )


def score_level(system: str, n: int, records: list[StreamRecord | BaseException], reference: str,
                word_ends: list[float | None], args: argparse.Namespace,
                load_start: str) -> dict[str, object]:  # fmt: skip
    ref = normalise(reference)
    wers: list[float] = []
    lat: list[float] = []
    missed = 0
    finals: list[float] = []
    signals: list[float] = []
    errors: list[str] = []
    timed = [(i, e) for i, e in enumerate(word_ends) if e is not None]
    for rec in records:
        if isinstance(rec, BaseException):
            errors.append(f"{type(rec).__name__}: {rec}")
            continue
        if rec.error:
            errors.append(rec.error)
        wers.append(word_errors(ref, normalise(rec.final_text)).wer)
        appeared = first_appearances(ref, rec.snapshots)
        values, miss = appearance_latencies([e for _, e in timed], [appeared[i] for i, _ in timed])
        lat += values
        missed += miss
        finals.append(max(0.0, (rec.last_change or 0.0) - rec.audio_end))
        if rec.text_done is not None:
            signals.append(rec.text_done - rec.audio_end)
    p95 = percentile(lat, 95)
    final_max = max(finals) if finals else None
    sustained = bool(
        not errors and finals and len(finals) == n and final_max is not None
        and final_max <= args.final_slack and p95 is not None
        and p95 <= args.chunk_seconds + 1.0
    )  # fmt: skip
    return {
        "system": NAMES[system],
        "clients": n,
        "wer_mean": round(float(np.mean(wers)), 4) if wers else None,
        "wer_max": round(float(np.max(wers)), 4) if wers else None,
        "latency_p50_s": None if not lat else round(percentile(lat, 50) or 0, 2),
        "latency_p95_s": None if p95 is None else round(p95, 2),
        "missed_words": missed,
        "timed_words": len(timed) * len(wers),
        "final_after_end_max_s": None if final_max is None else round(final_max, 2),
        "end_signal_after_end_max_s": round(max(signals), 2) if signals else None,
        "sustained": sustained,
        "errors": errors[:3],
        "load_start": load_start,
        "load_end": load_average(),
        "final_texts": [r.final_text for r in records if isinstance(r, StreamRecord)],
        # The first client's transcript over time, and its audio end (for inspection).
        "first_client": next(
            (
                {
                    "audio_end": round(r.audio_end, 2),
                    "snapshots": [(round(t, 2), s) for t, s in r.snapshots],
                }
                for r in records
                if isinstance(r, StreamRecord)
            ),
            None,
        ),  # fmt: skip
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=["rasst", "wlk", "wl"], choices=list(CLIENTS))
    ap.add_argument("--model", default="tiny.en", help="tiny.en, base or a model directory")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--audio", type=Path, default=TWO_CITIES, help="16 kHz WAV with a .txt beside")
    ap.add_argument("--seconds", type=float, default=0, help="use only the first N s (0: all)")
    ap.add_argument("--lm", type=int, default=2, help="RASST latency multiplier")
    ap.add_argument("--chunk-seconds", type=float, default=1.92)
    ap.add_argument("--final-slack", type=float, default=2.0)
    ap.add_argument("--final-timeout", type=float, default=120.0)
    ap.add_argument("--behind-s", type=float, default=10.0,
                    help="stop adding clients once the final text comes later than this")  # fmt: skip
    ap.add_argument("--settle", type=float, default=30.0, help="WhisperLive: quiet s before END")
    ap.add_argument("--rasst-url")
    ap.add_argument("--rasst-repo", type=Path, default=ROOT)
    ap.add_argument("--rasst-python", default=sys.executable)
    ap.add_argument("--rasst-env", action="append", default=[], help="KEY=VALUE for rasst serve")
    ap.add_argument("--wlk-venv", type=Path, default=Path("/work/peers/wlk-venv"))
    ap.add_argument("--wl-venv", type=Path, default=Path("/work/peers/wl-venv"))
    ap.add_argument("--logs", type=Path, default=CACHE / "logs")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    pcm = read_wav16(args.audio)
    reference = args.audio.with_suffix(".txt").read_text(encoding="utf-8")
    if args.seconds:
        raise SystemExit("--seconds needs a reference for the cut audio; not supported yet")
    model_dir = whisper_model_dir(args.model)
    word_ends = reference_word_ends(args.audio, reference)
    print(f"# model {model_dir}; {sum(e is not None for e in word_ends)}/{len(word_ends)} "
          f"reference words timed; load {load_average()}", file=sys.stderr)  # fmt: skip
    rows: list[dict[str, object]] = []
    starters = {
        "rasst": lambda: start_rasst(args, args.logs),
        "wlk": lambda: start_wlk(args, args.logs, model_dir),
        "wl": lambda: start_wl(args, args.logs, model_dir),
    }
    servers: dict[str, Server] = {}
    try:
        # All servers up (idle) first, then the levels interleaved across systems, so that a
        # change in the machine's load (it is shared) hits every system alike.
        for system in args.systems:
            try:
                servers[system] = starters[system]()
                # Warm-up: model load and worker start-up do not count.
                asyncio.run(
                    run_level(system, servers[system].url, pcm[: 5 * RATE], 1, args, model_dir)
                )
            except Exception as exc:  # noqa: BLE001 - one system failing must not stop the rest
                print(f"# {system}: could not start: {exc}", file=sys.stderr)
                rows.append({"system": NAMES[system], "clients": 0, "errors": [str(exc)[:300]]})
                if system in servers:
                    servers.pop(system).stop()
        active = list(servers)
        for n in args.levels:
            for system in list(active):
                load_start = load_average()
                url = servers[system].url
                try:
                    records = asyncio.run(run_level(system, url, pcm, n, args, model_dir))
                except TimeoutError as exc:
                    records = [exc] * n
                row = score_level(system, n, records, reference, word_ends, args, load_start)
                rows.append(row)
                brief = {k: v for k, v in row.items() if k not in ("final_texts", "first_client")}
                print(json.dumps(brief), file=sys.stderr, flush=True)
                final = row["final_after_end_max_s"]
                if row["errors"] or final is None or final > args.behind_s:
                    active.remove(system)  # fallen behind (or failing): more clients won't help
                    servers.pop(system).stop()
    finally:
        for server in servers.values():
            server.stop()
    rows.sort(key=lambda r: (args.systems.index(next(k for k, v in NAMES.items()
                                                     if v == r["system"])), r["clients"]))  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model, "rows": rows}, indent=1))
    header = ["system", "clients", "WER mean / max", "word → shown p50 / p95 (s)", "missed words",
              "final after end (s)", "sustained", "load 1-min start → end"]  # fmt: skip
    table = []
    for r in rows:
        if not r.get("clients"):
            table.append([r["system"], "–", "did not start", "", "", "", "", ""])
            continue
        table.append([
            r["system"], r["clients"], f"{r['wer_mean']} / {r['wer_max']}",
            f"{r['latency_p50_s']} / {r['latency_p95_s']}",
            f"{r['missed_words']} / {r['timed_words']}", r["final_after_end_max_s"],
            "yes" if r["sustained"] else "no" + (f" ({r['errors'][0][:60]})" if r["errors"] else ""),
            f"{str(r['load_start']).split(' /')[0]} → {str(r['load_end']).split(' /')[0]}",
        ])  # fmt: skip
    print(f"Model {args.model}; audio {args.audio.name} ({len(pcm) / RATE:.0f} s)\n")
    print(markdown_table(header, table))


if __name__ == "__main__":
    main()
