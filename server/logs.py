"""Logging set-up: plain lines for people, one JSON object per line for log pipelines."""

from __future__ import annotations

import json
import logging
import re
import time

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with ANSI colours
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# Secrets that can reach a log line through a URL or a header echo: API keys in
# query strings (browsers cannot set WebSocket headers), bearer tokens, and the
# capability tokens of viewer links.
_SECRETS = (
    (re.compile(r"((?:api_key|token|resume_token)=)[^&\s\"']+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(Bearer\s+)[^\s\"',]+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(/view/)[A-Za-z0-9_\-]{8,}"), r"\1***"),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactingHandler(logging.StreamHandler):
    """Masks secrets in every formatted line, whoever logged it (uvicorn, tracebacks too)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "info", *, json_logs: bool = False) -> None:
    handler = RedactingHandler()
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
