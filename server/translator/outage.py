"""One LLM outage, reported once per session: a warning when it starts, a log line when it ends.

Both translator tiers (speech and text) report their failed requests through this, so a
client sees the same single ``llm_unavailable`` warning whatever tier it talks to.
"""

from __future__ import annotations

import logging

from kernel.errors import ErrorCode
from kernel.frames import StageWarning
from server.stages import SessionContext, WarnFn
from server.translator.client import LlmError

log = logging.getLogger(__name__)


class OutageReport:
    def __init__(self, context: SessionContext, warn: WarnFn) -> None:
        self._context = context
        self._warn = warn
        self.failing = False

    def failed(self, error: LlmError, chunk_index: int) -> None:
        if self.failing:
            return
        self.failing = True
        log.warning(
            "session %s: LLM request failed, translating resumes when it answers: %s",
            self._context.session_id,
            error,
        )
        self._warn(
            StageWarning(
                code=ErrorCode.LLM_UNAVAILABLE,
                message=(
                    "translation is unavailable; captions and terms continue, "
                    f"translation resumes by itself ({error})"
                ),
                chunk_index=chunk_index,
            )
        )

    def recovered(self) -> None:
        if self.failing:
            self.failing = False
            log.info("session %s: LLM answers again", self._context.session_id)
