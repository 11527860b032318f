"""One streaming session, as a short orchestration over named parts.

- ``stream``: :class:`StreamSession`, the four tasks of a session and its lifecycle;
- ``admission``: the first message, auth, rate limits, and building the opened pipeline;
- ``events``: pure functions from pipeline frames to wire events;
- ``accounting``: what the stream has done, for ``chunk.done`` and ``session.summary``;
- ``replay``: the numbered event log and the speaker's link (attached / detached / closed);
- ``evidence``: what the speech front end said about the chunk being filled;
- ``wire``: receiving from, sending to and closing the WebSocket.
"""

from server.session.stream import StreamSession
from server.session.wire import close_reason

__all__ = ["StreamSession", "close_reason"]
