"""The gateway's sinks, per session: attach (from session.start or REST), list, forget."""

from __future__ import annotations

from collections.abc import Sequence

from kernel.errors import ErrorCode, RasstError
from server.feeds import SessionFeed
from server.sinks.models import SinkSpec, SinkStatus
from server.sinks.runner import SinkRunner, Warn, redact_http_logs

MAX_SINKS_PER_SESSION = 4


class SinkHub:
    def __init__(self) -> None:
        self._sinks: dict[str, list[SinkRunner]] = {}
        redact_http_logs()

    def attach(
        self,
        feed: SessionFeed,
        specs: Sequence[SinkSpec],
        *,
        source_language: str,
        target_languages: Sequence[str],
        after_seq: int = 0,
        warn: Warn | None = None,
    ) -> list[SinkRunner]:
        """Start one runner per spec; refuses a language the session does not produce."""
        self._forget_finished()
        current = self._sinks.get(feed.session_id, [])
        if len(current) + len(specs) > MAX_SINKS_PER_SESSION:
            raise RasstError(
                ErrorCode.LIMIT_EXCEEDED,
                f"a session may have at most {MAX_SINKS_PER_SESSION} sinks",
            )
        languages = [source_language, *target_languages]
        for spec in specs:
            if spec.lang is not None and spec.lang not in languages:
                raise RasstError(
                    ErrorCode.VALIDATION_FAILED,
                    f"sink language {spec.lang!r} is not produced by this session (it "
                    f"produces {languages}; a target language needs a server with a translator)",
                )
        runners = [
            SinkRunner(spec, feed, source_language=source_language, after_seq=after_seq, warn=warn)
            for spec in specs
        ]
        for runner in runners:
            runner.start()
        self._sinks[feed.session_id] = [*current, *runners]
        return runners

    def statuses(self, session_id: str) -> list[SinkStatus]:
        return [r.status() for r in self._sinks.get(session_id, [])]

    def _forget_finished(self) -> None:
        # Statuses outlive their session a while; drop sessions whose sinks all ended.
        if len(self._sinks) < 256:
            return
        for session_id, runners in list(self._sinks.items()):
            if all(r.task is None or r.task.done() for r in runners):
                del self._sinks[session_id]
