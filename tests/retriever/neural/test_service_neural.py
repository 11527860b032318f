"""The retriever service on the neural encoder, chosen by configuration, over real HTTP.

Tiny random models are written to a temporary directory as local "model ids"
(``from_pretrained`` takes paths) with trainer-layout adapters next to them,
and the real service process is started with ``RASST_RETRIEVER_ENCODER=neural``.
"""

from __future__ import annotations

from tests.retriever.neural.support import require_neural_stack

require_neural_stack()

import asyncio  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kernel.frames import TermHits  # noqa: E402
from retriever.encoder_factory import EncoderParams, build_encoders  # noqa: E402
from retriever.engine import EngineParams, RequestBatcher, RetrievalEngine  # noqa: E402
from retriever.wire import QUERY_HEADER, GlossaryRef, GlossaryUpload, RetrieveQuery  # noqa: E402
from tests.retriever.helpers import snapshot  # noqa: E402
from tests.retriever.neural.support import (  # noqa: E402
    tiny_audio_config,
    tiny_config,
    tiny_text_config,
    tiny_tokenizer,
    tone,
)
from tests.support.retriever_service import RetrieverProcess, start_retriever  # noqa: E402

TERMS = ["contrastive learning", "bleu score", "speech model", "term data", "the model"]
SNAP = snapshot(TERMS)
CHUNK = 15_360  # 0.96 s: two 1.92 s windows end in each chunk (0.48 s stride)
SESSIONS = 6
CHUNKS = 3


def write_tiny_models(root: Path) -> Path:
    """Tiny base models as local model directories, and our trainer's adapters over them."""
    from transformers import XLMRobertaModel
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
        Qwen3OmniMoeAudioEncoder,
    )

    from retriever.neural.checkpoint import save_adapters
    from retriever.neural.models import build_models

    tokenizer = tiny_tokenizer(TERMS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # save_pretrained's notes about generation configs
        Qwen3OmniMoeAudioEncoder(tiny_audio_config()).save_pretrained(root / "audio")
        text = XLMRobertaModel(tiny_text_config(len(tokenizer)), add_pooling_layer=False)
        text.save_pretrained(root / "text")
        tokenizer.save_pretrained(root / "text")
    models = build_models(
        tiny_config(audio_model=str(root / "audio"), text_model=str(root / "text"))
    )
    save_adapters(root / "adapters", models)
    return root / "adapters"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="module")
def neural_service(
    adapters: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RetrieverProcess]:
    root = tmp_path_factory.mktemp("neural-service")
    proc = start_retriever(
        root / "service.log",
        ready_timeout=180,
        env={
            "RASST_RETRIEVER_ENCODER": "neural",
            "RASST_NEURAL_ADAPTERS": str(adapters),
            "RASST_NEURAL_DEVICE": "cpu",
            # Wide windows: on a loaded CI CPU the sessions' threads must still meet.
            "RASST_NEURAL_BATCH_WINDOW_MS": "100",
            "RASST_NEURAL_TAU": "-1",  # random weights: keep every candidate
            "RASST_DATA_DIR": str(root / "data"),
            "OMP_NUM_THREADS": "2",
        },
        args=["--batch-window-ms", "50", "--max-batch", "16"],
    )
    yield proc
    proc.stop()


def pcm(session: int, chunk: int) -> np.ndarray:
    return (tone(200 + 50 * session, CHUNK / 16_000, seed=10 * session + chunk) * 20_000).astype(
        np.int16
    )


def query(session: str, chunk: int, final: bool = False) -> RetrieveQuery:
    return RetrieveQuery(
        session_id=session,
        chunk_index=chunk,
        start_sample=chunk * CHUNK,
        final=final,
        glossaries=[GlossaryRef(id="g", version=1)],
        target_languages=["de"],
        k=3,
        tau=0.99,  # the gateway's τ; the service's neural_tau replaces it
    )


def check_hits(hits: list[dict[str, object]], chunk: int) -> None:
    assert 1 <= len(hits) <= 3  # τ = −1: every chunk with windows has candidates
    for hit in hits:
        assert hit["source"] in TERMS
        assert hit["targets"] == {"de": f"{hit['source']}-de"}
        assert hit["glossary_id"] == "g"
        score = hit["score"]
        assert isinstance(score, float) and -1.0 - 1e-4 <= score <= 1.0 + 1e-4
        start, end = hit["start_sample"], hit["end_sample"]
        assert isinstance(start, int) and isinstance(end, int)
        assert 0 <= start < end <= (chunk + 1) * CHUNK


@pytest.mark.slow
async def test_neural_service_batches_windows_across_sessions(
    neural_service: RetrieverProcess,
) -> None:
    async with httpx.AsyncClient(base_url=neural_service.url, timeout=120) as client:
        put = await client.put(
            "/v1/glossaries/g/versions/1",
            content=GlossaryUpload.of(SNAP).model_dump_json(),
            headers={"Content-Type": "application/json"},
        )
        assert put.status_code == 204
        for chunk in range(CHUNKS):  # sessions in lockstep, as live streams are
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/v1/retrieve",
                        content=pcm(s, chunk).tobytes(),
                        headers={
                            QUERY_HEADER: query(
                                f"n{s}", chunk, final=chunk == CHUNKS - 1
                            ).model_dump_json()
                        },
                    )
                    for s in range(SESSIONS)
                )
            )
            for answer in answers:
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert body["chunk_index"] == chunk
                check_hits(body["hits"], chunk)
        stats = (await client.get("/v1/stats")).json()
        dropped = await client.delete("/v1/sessions/n0")
    assert dropped.status_code == 204
    assert stats["encoder"] == "neural"
    assert stats["requests"] == SESSIONS * CHUNKS
    # Encode-once spans (the default): each request encodes its chunk's span
    # once; more inputs per pass means sessions shared a pass.
    assert stats["windows"] == SESSIONS * CHUNKS
    assert stats["windows"] / stats["forward_passes"] > 1
    assert stats["max_windows_per_pass"] > 1, stats


@pytest.mark.slow
async def test_neural_service_fills_skipped_chunks_and_rejects_bad_audio(
    neural_service: RetrieverProcess,
) -> None:
    async with httpx.AsyncClient(base_url=neural_service.url, timeout=120) as client:
        await client.put(
            "/v1/glossaries/g/versions/1",
            content=GlossaryUpload.of(SNAP).model_dump_json(),
            headers={"Content-Type": "application/json"},
        )
        first = await client.post(
            "/v1/retrieve",
            content=pcm(0, 0).tobytes(),
            headers={QUERY_HEADER: query("gap", 0).model_dump_json()},
        )
        # Chunks 1-4 never arrive (a gateway skips chunks while the service is down).
        later = await client.post(
            "/v1/retrieve",
            content=pcm(0, 5).tobytes(),
            headers={QUERY_HEADER: query("gap", 5).model_dump_json()},
        )
        odd = await client.post(
            "/v1/retrieve", content=b"\0", headers={QUERY_HEADER: query("x", 0).model_dump_json()}
        )
    assert first.status_code == 200 and later.status_code == 200, later.text
    check_hits(later.json()["hits"], 5)
    # Its evidence sits at its true stream position: inside the chunk's span
    # [start − 1.92 s, end] and reaching into the chunk (not at the stream's start).
    assert all(
        h["start_sample"] >= 5 * CHUNK - 30_720 and h["end_sample"] > 5 * CHUNK
        for h in later.json()["hits"]
    )
    assert odd.status_code == 422


async def test_engine_runs_a_batch_concurrently_on_the_neural_encoder(adapters: Path) -> None:
    """In process: one RequestBatcher batch of several sessions is one model forward pass."""
    encoders = await asyncio.to_thread(
        build_encoders,
        EncoderParams(
            kind="neural", adapters=adapters, device="cpu", batch_window_seconds=0.2, tau=-1.0
        ),
    )
    engine = RetrievalEngine(EngineParams(), encoders)
    engine.add_glossary(SNAP)
    batcher = RequestBatcher(engine, window_seconds=0.05, max_batch=8)
    batcher.start()
    try:
        results = await asyncio.gather(
            *(batcher.submit(query(f"e{s}", 0), CHUNK, pcm(s, 0)) for s in range(4))
        )
    finally:
        await batcher.aclose()
        await asyncio.to_thread(engine.close)
    for hits, size in results:
        assert isinstance(hits, TermHits) and hits.hits
        assert all(h.source in TERMS for h in hits.hits)
        assert size == 4
    stats = encoders.stats()
    # One encoded span per session's chunk, all four in a single forward pass.
    assert stats["windows"] == 4 and stats["forward_passes"] == 1, stats
