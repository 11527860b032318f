"""Memory under concurrent session churn (issue 22, item 1): nothing a session allocates
outlives it, in the gateway or in its speech workers.

Short CI form of ``bench/churn.py``: a real ``rasst serve`` with its default front end
(captions on), a warm-up wave, then 3 waves of 20 concurrent short sessions (1 s of
speech, long enough that Whisper transcribes it, then ``session.end``) and a wave of 20
dropped mid-stream (no ``session.end``, no close handshake; they wait out a 1 s resume
grace). After every wave the gateway must hold no session; the RSS of its whole process
tree after the waves must stay within ``BOUND_MIB`` of the RSS after the warm-up.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.churn import WaveResult, speech_pcm, tree_rss_mib, wave
from tests.support.live_server import TWO_CITIES, LiveServer, start_server

WAVE = 20
# Measured: +15 MiB over 24 waves of 40 (bench/churn.py, docs/reliability.md). The defect
# this guards against grew the tree by gigabytes in three waves.
BOUND_MIB = 60.0


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("churn"),
        env={
            "RASST_RESUME_GRACE_SECONDS": "1",
            # The churn is the point here, not the limits.
            "RASST_RATE_LIMIT_PER_MINUTE": "0",
            "RASST_MAX_DETACHED_SESSIONS_PER_CALLER": "0",
        },
    )
    yield server
    server.stop()


@pytest.mark.slow
async def test_memory_stays_flat_under_concurrent_churn(gateway: LiveServer) -> None:
    pcm = speech_pcm(TWO_CITIES, 1.0)
    pid = gateway.process.pid
    args = (gateway.ws_url, gateway.http_url, pid, pcm)
    waves: list[WaveResult] = [await wave(*args, index=0, sessions=WAVE)]  # warm-up
    baseline = tree_rss_mib(pid)
    for index in (1, 2, 3):
        waves.append(await wave(*args, index=index, sessions=WAVE))
    waves.append(await wave(*args, index=4, sessions=WAVE, drop=True))
    report = "\n".join(w.line() for w in waves)
    print(f"\n{report}\nbaseline after warm-up {baseline:.1f} MiB")
    for result in waves:
        assert not result.failures, report
        assert result.completed + result.dropped == WAVE, report
    grown = waves[-1].rss_after_mib - baseline
    assert grown <= BOUND_MIB, (
        f"the gateway's process tree grew {grown:.0f} MiB over {len(waves) - 1} waves "
        f"(bound {BOUND_MIB:.0f} MiB):\n{report}"
    )
