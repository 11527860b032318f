"""The translate stage against canned SSE streams (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest

from kernel.frames import StageWarning, TermHits, TranslationCommit, TranslationDelta
from server.stages import TranslationEvent
from server.translator import (
    AudioPartStyle,
    DecodingParams,
    FaultParams,
    HistoryParams,
    TranslatorParams,
    VllmTranslatorService,
)
from server.translator.client import LlmError
from server.translator.service import VllmSessionTranslator, cache_salt
from tests.translator.fakes import (
    EventStream,
    Recorder,
    chunk,
    context,
    hits,
    sse_events,
    stream_reply,
)

FAST_FAULTS = FaultParams(backoff_seconds=0.001, breaker_failures=3, breaker_reset_seconds=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _service(
    recorder: Recorder, *, clock: Clock | None = None, **overrides: object
) -> VllmTranslatorService:
    params = TranslatorParams(
        url="http://vllm.test:8000/v1",
        model="rasst-zh",
        api_key="secret-key",
        faults=FAST_FAULTS,
        **overrides,  # type: ignore[arg-type]
    )
    return VllmTranslatorService(params, transport=recorder.transport(), clock=clock or Clock())


async def _collect(events: AsyncIterator[TranslationEvent]) -> list[TranslationEvent]:
    return [event async for event in events]


def _commits(events: list[TranslationEvent]) -> dict[str, TranslationCommit]:
    commits = [e for e in events if isinstance(e, TranslationCommit)]
    by_lang = {c.lang: c for c in commits}
    assert len(by_lang) == len(commits), "one commit per language"
    return by_lang


ZH_TERMS = hits(
    0,
    ("contrastive learning", {"zh": "对比学习", "de": "kontrastives Lernen"}, 0.93),
    ("BLEU score", {"zh": "BLEU值"}, 0.81),
    ("contrastive learning", {"zh": "重复"}, 0.5),
)


async def test_request_body_carries_prompt_audio_term_map_and_decoding() -> None:
    recorder = Recorder(default=["<t>对比", "学习</t>", "很好"])
    service = _service(recorder)
    session = await service.open_session(context("zh", lm=2), [].append)
    audio = chunk(0, seconds=1.92)
    await _collect(session.translate(audio, ZH_TERMS))
    await service.aclose()

    (request,) = recorder.requests
    assert str(request.url) == "http://vllm.test:8000/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer secret-key"
    assert request.headers["x-session-id"] == "sess-1"
    body = recorder.bodies[0]
    assert body["model"] == "rasst-zh"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.6, 0.95, 20)
    assert body["max_tokens"] == 80  # 40 × lm
    assert body["cache_salt"] == cache_salt("tenant-a")
    system, user = body["messages"]
    assert system["role"] == "system" and "into Chinese text" in system["content"]
    audio_part, text_part = user["content"]
    assert audio_part["type"] == "input_audio" and audio_part["input_audio"]["format"] == "wav"
    with wave.open(io.BytesIO(base64.b64decode(audio_part["input_audio"]["data"]))) as wav:
        assert wav.getframerate() == 16_000
        assert np.array_equal(np.frombuffer(wav.readframes(wav.getnframes()), "<i2"), audio.pcm)
    assert text_part == {
        "type": "text",
        "text": "\n\nterm_map:\ncontrastive learning=对比学习\nBLEU score=BLEU值",
    }


async def test_deltas_are_tag_free_and_commit_keeps_raw_for_history() -> None:
    recorder = Recorder(replies=[["我们用", "<", "t>对比", "学习</", "t", ">训练"], ["好"]])
    service = _service(recorder)
    session = await service.open_session(context("zh"), [].append)
    events = await _collect(session.translate(chunk(0), ZH_TERMS))
    deltas = [e for e in events if isinstance(e, TranslationDelta)]
    (commit,) = _commits(events).values()
    assert "".join(d.delta for d in deltas) == commit.text == "我们用对比学习训练"
    assert [d.text for d in deltas][-1] == commit.text
    assert all("<" not in d.delta and ">" not in d.delta for d in deltas)
    assert commit.raw == "我们用<t>对比学习</t>训练"
    assert commit.terms_used == ("contrastive learning",)
    assert commit.time_to_first_token is not None
    assert commit.extra["completion_tokens"] == 6
    assert events[-1] is commit

    # The next request replays the raw answer (tags kept) as the assistant turn.
    await _collect(session.translate(chunk(1), TermHits(chunk_index=1)))
    messages = recorder.bodies[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "我们用<t>对比学习</t>训练"
    assert len(messages[3]["content"]) == 1, "no term_map part when nothing was retrieved"
    await service.aclose()


async def test_several_targets_run_in_parallel_with_one_history_each() -> None:
    release = asyncio.Event()
    started: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        lang = "zh" if "Chinese" in request.content.decode() else "de"
        started.append(lang)
        if len(started) == 2:
            release.set()
        await asyncio.wait_for(release.wait(), 5)  # both requests are in flight at once
        stream = EventStream(sse_events([f"{lang}-text"]))
        return httpx.Response(200, stream=stream)

    service = VllmTranslatorService(
        TranslatorParams(url="http://vllm.test", model="m", faults=FAST_FAULTS),
        transport=httpx.MockTransport(handler),
    )
    session = await service.open_session(context("zh", "de"), [].append)
    events = await _collect(session.translate(chunk(0), ZH_TERMS))
    commits = _commits(events)
    assert {lang: c.text for lang, c in commits.items()} == {"zh": "zh-text", "de": "de-text"}
    assert commits["de"].terms_used == ()
    assert isinstance(session, VllmSessionTranslator)
    assert len(session.history("zh")) == len(session.history("de")) == 1
    await service.aclose()


async def test_audio_url_style_and_model_lookup() -> None:
    recorder = Recorder(default=["x"])
    params = TranslatorParams(url="http://vllm.test/", audio_part=AudioPartStyle.AUDIO_URL)
    service = VllmTranslatorService(params, transport=recorder.transport())
    session = await service.open_session(context("ja"), [].append)
    await _collect(session.translate(chunk(0), TermHits(chunk_index=0)))
    body = recorder.bodies[0]
    assert body["model"] == "served-model"
    part = body["messages"][1]["content"][0]
    assert part["type"] == "audio_url"
    assert part["audio_url"]["url"].startswith("data:audio/wav;base64,UklGR")
    assert "into Japanese text" in body["messages"][0]["content"]
    assert await service.check_ready()
    await service.aclose()


async def test_per_language_models() -> None:
    recorder = Recorder(default=["x"])
    service = _service(recorder, models={"de": "rasst-de", "ja": "rasst-ja"})
    session = await service.open_session(context("zh", "de-AT"), [].append)
    await _collect(session.translate(chunk(0), TermHits(chunk_index=0)))
    models = {
        "Chinese" if "Chinese" in b["messages"][0]["content"] else "German": b["model"]
        for b in recorder.bodies
    }
    assert models == {"Chinese": "rasst-zh", "German": "rasst-de"}
    await service.aclose()


async def test_decoding_and_history_are_configurable() -> None:
    recorder = Recorder(default=["x"])
    service = _service(
        recorder,
        decoding=DecodingParams(temperature=0.0, top_p=1.0, top_k=-1, max_tokens_per_lm=10),
        history=HistoryParams(max_chunks=1),
    )
    session = await service.open_session(context("zh", lm=3), [].append)
    for i in range(3):
        await _collect(session.translate(chunk(i), TermHits(chunk_index=i)))
    body = recorder.bodies[-1]
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (
        0.0,
        1.0,
        -1,
        30,
    )
    assert len(body["messages"]) == 4  # system + 1 past pair + new turn
    await service.aclose()


async def test_unreachable_llm_warns_once_commits_empty_and_resumes_by_itself() -> None:
    clock = Clock()
    recorder = Recorder(default=httpx.ConnectError("connection refused"))
    service = _service(recorder, clock=clock)
    warnings: list[StageWarning] = []
    session = await service.open_session(context("zh", "de"), warnings.append)

    for i in range(4):
        commits = _commits(await _collect(session.translate(chunk(i), ZH_TERMS)))
        assert set(commits) == {"zh", "de"}
        assert all(c.text == "" and c.raw == "" for c in commits.values())
    assert [w.code for w in warnings] == ["llm_unavailable"]
    assert warnings[0].chunk_index == 0
    # 3 connect attempts per request; the breaker (3 failures) opened during
    # chunk 1 (two languages in parallel: 4 requests), then no traffic at all.
    calls_while_open = len(recorder.requests)
    assert calls_while_open == 4 * 3
    await _collect(session.translate(chunk(4), ZH_TERMS))
    assert len(recorder.requests) == calls_while_open

    # The LLM is back; after the reset time one probe passes and closes the breaker.
    recorder.default = ["回来了"]
    clock.now += 1.0
    probe_commits = _commits(await _collect(session.translate(chunk(5), ZH_TERMS)))
    # The probe's language resumes; the other may have failed fast meanwhile.
    assert "回来了" in {c.text for c in probe_commits.values()}
    commits = _commits(await _collect(session.translate(chunk(6), ZH_TERMS)))
    assert all(c.text == "回来了" for c in commits.values())
    assert [w.code for w in warnings] == ["llm_unavailable"]
    # Failed chunks never entered the history.
    assert isinstance(session, VllmSessionTranslator)
    for lang in ("zh", "de"):
        answered = (probe_commits[lang].text != "") + 1
        assert len(session.history(lang)) == answered
    await service.aclose()


async def test_a_new_outage_warns_again() -> None:
    recorder = Recorder(replies=[httpx.ConnectError("down")] * 3 + [["ok"], 503])
    service = _service(recorder)
    warnings: list[StageWarning] = []
    session = await service.open_session(context("zh"), warnings.append)
    for i in range(3):
        await _collect(session.translate(chunk(i), TermHits(chunk_index=i)))
    assert len(warnings) == 2
    assert "503" in warnings[1].message


async def test_rejected_prompt_shortens_the_history() -> None:
    recorder = Recorder(replies=[["a"]] * 6 + [400])
    service = _service(recorder, history=HistoryParams(block=2))
    session = await service.open_session(context("zh"), [].append)
    for i in range(7):
        await _collect(session.translate(chunk(i), TermHits(chunk_index=i)))
    assert isinstance(session, VllmSessionTranslator)
    assert len(session.history("zh")) == 3  # 6 answered; max(block, half) dropped after the 400
    await service.aclose()


async def test_client_errors_do_not_open_the_breaker() -> None:
    recorder = Recorder(default=400)
    service = _service(recorder)
    warnings: list[StageWarning] = []
    session = await service.open_session(context("zh"), warnings.append)
    for i in range(5):
        (commit,) = _commits(
            await _collect(session.translate(chunk(i), TermHits(chunk_index=i)))
        ).values()
        assert commit.text == ""
    assert len(recorder.requests) == 5, "no retries, never short-circuited"
    assert len(warnings) == 1
    await service.aclose()


async def test_broken_stream_commits_partial_text_outside_history() -> None:
    recorder = Recorder()
    stream = EventStream(sse_events(["部分", "<t>译"]), fail_after=3)
    recorder.replies.append(stream_reply(stream, recorder.streams))
    service = _service(recorder)
    warnings: list[StageWarning] = []
    session = await service.open_session(context("zh"), warnings.append)
    events = await _collect(session.translate(chunk(0), ZH_TERMS))
    (commit,) = _commits(events).values()
    assert commit.text == "部分译"
    assert commit.extra["incomplete"] is True
    assert isinstance(session, VllmSessionTranslator)
    assert len(session.history("zh")) == 0
    assert stream.closed
    assert len(warnings) == 1
    await service.aclose()


async def test_read_timeout_is_not_retried() -> None:
    recorder = Recorder(default=httpx.ReadTimeout("slow"))
    service = _service(recorder)
    session = await service.open_session(context("zh"), [].append)
    await _collect(session.translate(chunk(0), TermHits(chunk_index=0)))
    assert len(recorder.requests) == 1
    await service.aclose()


class _Trickle(httpx.AsyncByteStream):
    """An SSE stream that sends one event every ``interval`` seconds (a crawling server)."""

    def __init__(self, events: list[bytes], interval: float) -> None:
        self.events = events
        self.interval = interval
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self.events:
            await asyncio.sleep(self.interval)
            yield event

    async def aclose(self) -> None:
        self.closed = True


async def test_request_deadline_ends_a_trickling_completion_with_a_partial_commit() -> None:
    # Every event arrives well within the read timeout, but the whole answer would
    # take 40 × 0.05 s: the deadline ends it, keeps what arrived, and warns.
    trickle = _Trickle(sse_events(["片段"] * 40), interval=0.05)
    recorder = Recorder(replies=[lambda request: _event_stream_response(trickle)])
    service = VllmTranslatorService(
        TranslatorParams(
            url="http://vllm.test:8000",
            model="m",
            faults=FaultParams(read_timeout=5.0, request_deadline=0.5, breaker_failures=1),
        ),
        transport=recorder.transport(),
    )
    warnings: list[StageWarning] = []
    session = await service.open_session(context("zh"), warnings.append)
    started = asyncio.get_running_loop().time()
    (commit,) = _commits(await _collect(session.translate(chunk(0), ZH_TERMS))).values()
    assert asyncio.get_running_loop().time() - started < 2.0
    assert commit.text.startswith("片段") and commit.text != "片段" * 40
    assert commit.extra["incomplete"] is True
    assert "within 0.5 s" in str(commit.extra["error"])
    assert [w.code for w in warnings] == ["llm_unavailable"]
    assert trickle.closed, "the response was closed (vLLM aborts the request)"
    assert isinstance(session, VllmSessionTranslator)
    assert len(session.history("zh")) == 0
    # A deadline miss is an endpoint fault: it counts against the breaker.
    assert service.client.breaker.state == "open"
    await service.aclose()


async def test_request_deadline_covers_a_response_that_never_starts() -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    service = VllmTranslatorService(
        TranslatorParams(
            url="http://vllm.test:8000",
            model="m",
            faults=FaultParams(read_timeout=30.0, request_deadline=0.3),
        ),
        transport=httpx.MockTransport(never),
    )
    warnings: list[StageWarning] = []
    session = await service.open_session(context("zh"), warnings.append)
    async with asyncio.timeout(5):
        (commit,) = _commits(
            await _collect(session.translate(chunk(0), TermHits(chunk_index=0)))
        ).values()
    assert commit.text == "" and commit.extra["incomplete"] is False
    assert [w.code for w in warnings] == ["llm_unavailable"]
    await service.aclose()


def _event_stream_response(stream: httpx.AsyncByteStream) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


async def test_cancelling_the_consumer_cancels_the_request() -> None:
    recorder = Recorder()
    stream = EventStream(sse_events(["一", "二", "三"]), stall_after=2)
    recorder.replies.append(stream_reply(stream, recorder.streams))
    service = _service(recorder)
    session = await service.open_session(context("zh"), [].append)

    async def consume() -> None:
        async for _ in session.translate(chunk(0), TermHits(chunk_index=0)):
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(stream.stalled.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.closed, "the HTTP response was closed (vLLM aborts the request)"
    # The breaker did not count the cancelled request as a failure.
    assert service.client.breaker.acquire() is False
    await service.aclose()


async def test_closing_the_generator_early_cancels_the_request() -> None:
    recorder = Recorder()
    stream = EventStream(sse_events(["一", "二", "三"]), stall_after=2)
    recorder.replies.append(stream_reply(stream, recorder.streams))
    service = _service(recorder)
    session = await service.open_session(context("zh"), [].append)
    events = session.translate(chunk(0), TermHits(chunk_index=0))
    first = await anext(events)
    assert isinstance(first, TranslationDelta)
    await events.aclose()  # type: ignore[attr-defined]
    assert stream.closed
    await service.aclose()


def test_cache_salt_is_stable_per_tenant_and_hides_the_tenant() -> None:
    assert cache_salt("a") == cache_salt("a")
    assert cache_salt("a") != cache_salt("b")
    assert "tenant-a" not in cache_salt("tenant-a")


async def test_check_ready_is_false_when_unreachable() -> None:
    async def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    service = VllmTranslatorService(
        TranslatorParams(url="http://vllm.test", model="m"), transport=httpx.MockTransport(down)
    )
    assert await service.check_ready() is False
    await service.aclose()


async def test_llm_error_carries_outage_flag() -> None:
    assert LlmError("x", outage=True).outage


async def test_catch_up_turn_gets_the_budget_of_its_audio_and_a_seed() -> None:
    """A merged turn of three lm=1 chunks (2.88 s) gets 3 × 40 tokens, not one chunk's 40."""
    recorder = Recorder(default=["x"])
    service = _service(recorder, decoding=DecodingParams(seed=1234))
    session = await service.open_session(context("zh", lm=1), [].append)
    await _collect(session.translate(chunk(0, seconds=0.96), TermHits(chunk_index=0)))
    await _collect(session.translate(chunk(1, seconds=2.88), TermHits(chunk_index=1)))
    await _collect(session.translate(chunk(4, seconds=0.5), TermHits(chunk_index=4)))
    assert [b["max_tokens"] for b in recorder.bodies] == [40, 120, 40]
    assert all(b["seed"] == 1234 for b in recorder.bodies)
    await service.aclose()
    # Without a seed none is sent (the server's own randomness).
    plain = Recorder(default=["x"])
    service = _service(plain)
    session = await service.open_session(context("zh", lm=2), [].append)
    await _collect(session.translate(chunk(0, seconds=1.92), TermHits(chunk_index=0)))
    assert "seed" not in plain.bodies[0] and plain.bodies[0]["max_tokens"] == 80
    await service.aclose()


@pytest.mark.parametrize(
    ("lm", "seconds", "tokens"),
    [(1, 0.96, 40), (1, 1.92, 80), (1, 3.84, 160), (2, 1.92, 80), (2, 3.0, 160), (4, 0.2, 160)],
)
def test_token_budget_by_turn_audio(lm: int, seconds: float, tokens: int) -> None:
    assert DecodingParams().max_tokens(lm, round(seconds * 16_000)) == tokens


async def test_release_serving_params_prompt_padding_seed_and_history() -> None:
    """The paper preset's translator: zh training prompt, 0.96 s padding, seed, 30 audios."""
    from server.translator import PromptStyle, TrimPolicy
    from server.translator.messages import RELEASE_ZH_PROMPT, SYSTEM_PROMPT

    recorder = Recorder(default=["x"])
    service = _service(
        recorder,
        decoding=DecodingParams(seed=998_244_353),
        history=HistoryParams(policy=TrimPolicy.STEP, count_current=True),
        prompt_style=PromptStyle.RELEASE,
        min_audio_samples=15_360,
    )
    session = await service.open_session(context("zh", "de", lm=1), [].append)
    for i in range(33):
        await _collect(session.translate(chunk(i), TermHits(chunk_index=i)))
    await _collect(session.translate(chunk(33, seconds=0.3), TermHits(chunk_index=33)))
    await service.aclose()
    zh = [b for b in recorder.bodies if "Chinese" in b["messages"][0]["content"]]
    de = [b for b in recorder.bodies if "German" in b["messages"][0]["content"]]
    assert zh and all(b["messages"][0]["content"] == RELEASE_ZH_PROMPT for b in zh)
    assert "\u2018term_map\u2019" in RELEASE_ZH_PROMPT
    assert de[0]["messages"][0]["content"] == SYSTEM_PROMPT.format(language="German")
    assert all(b["seed"] == 998_244_353 for b in recorder.bodies)
    # At most 30 audios per prompt (29 past pairs + the new turn), one pair dropped per step.
    users = [sum(m["role"] == "user" for m in b["messages"]) for b in zh]
    assert max(users) == 30 and users[-3:] == [30, 30, 30]
    first_past = [b["messages"][1] for b in zh[-3:]]
    assert first_past[0] != first_past[1] != first_past[2]
    # The final 0.3 s chunk goes out padded to 0.96 s of audio (zeros at its end).
    data = zh[-1]["messages"][-1]["content"][0]["input_audio"]["data"]
    with wave.open(io.BytesIO(base64.b64decode(data))) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert len(pcm) == 15_360 and not pcm[4_800:].any()
    np.testing.assert_array_equal(pcm[:4_800], chunk(33, seconds=0.3).pcm)
