from __future__ import annotations

import asyncio

from server.feeds import FeedHub


async def test_viewer_gets_backlog_then_live_events_until_the_end() -> None:
    hub = FeedHub()
    feed = hub.open("s1", "t1")
    feed.publish('{"type": "a"}')
    received: list[str] = []

    async def view() -> None:
        async for text in feed.follow():
            received.append(text)

    viewer = asyncio.create_task(view())
    await asyncio.sleep(0)
    feed.publish('{"type": "b"}')
    await asyncio.sleep(0)
    feed.close()
    await asyncio.wait_for(viewer, 1)
    assert received == ['{"type": "a"}', '{"type": "b"}']
    assert feed.viewers == 0


async def test_late_joiner_of_a_finished_session_gets_everything() -> None:
    feed = FeedHub().open("s1", "t1")
    feed.publish('{"type": "a"}')
    feed.close()
    assert [t async for t in feed.follow()] == ['{"type": "a"}']
    assert feed.events() == [{"type": "a"}]


async def test_a_viewer_that_stops_reading_is_dropped_not_the_speaker() -> None:
    feed = FeedHub().open("s1", "t1")
    stream = feed.follow().__aiter__()
    feed.publish("0")
    assert await stream.__anext__() == "0"  # subscribed, then stops reading
    for i in range(2000):
        feed.publish(str(i))  # never blocks, never raises
    assert feed.viewers == 0


def test_tokens_are_unguessable_and_sessions_tenant_scoped() -> None:
    hub = FeedHub()
    a, b = hub.open("s1", "t1"), hub.open("s2", "t1")
    assert a.viewer_token != b.viewer_token and len(a.viewer_token) >= 24
    assert hub.by_token(a.viewer_token) is a
    assert hub.get("s1", "t1") is a
    assert hub.get("s1", "t2") is None


def test_finished_feeds_are_retained_up_to_the_limit() -> None:
    hub = FeedHub(retain_finished=2)
    feeds = [hub.open(f"s{i}", "t") for i in range(4)]
    for feed in feeds:
        feed.close()
    hub.open("s9", "t")
    assert hub.get("s0", "t") is None and hub.get("s1", "t") is None
    assert hub.get("s2", "t") is feeds[2] and hub.get("s3", "t") is feeds[3]
    assert hub.by_token(feeds[0].viewer_token) is None


async def test_the_end_does_not_cut_a_viewers_unread_tail() -> None:
    # Found by bench/viewer_fanout.py: a mirror gets the summary and the end in one read, and
    # closing used to empty every viewer's queue, so viewers lost the session's last events.
    feed = FeedHub().open("s1", "t1")
    stream = feed.follow().__aiter__()
    feed.publish("0")
    assert await stream.__anext__() == "0"
    for text in ("caption", "chunk.done", "summary"):
        feed.publish(text)
    feed.close()  # before the viewer read any of them
    assert [t async for t in stream] == ["caption", "chunk.done", "summary"]
    assert feed.viewers == 0


async def test_a_viewer_still_reading_its_backlog_when_the_session_ends_gets_everything() -> None:
    feed = FeedHub().open("s1", "t1")
    feed.publish("a")
    stream = feed.follow().__aiter__()
    assert await stream.__anext__() == "a"  # joined while live, reading the backlog
    feed.publish("b")
    feed.close()
    assert [t async for t in stream] == ["b"]


def test_viewer_tokens_never_read_as_a_command_line_option() -> None:
    from server.feeds import new_viewer_token

    tokens = [new_viewer_token() for _ in range(5000)]
    assert not any(t.startswith("-") for t in tokens)
    assert len(set(tokens)) == len(tokens) and min(map(len, tokens)) >= 24
