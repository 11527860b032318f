"""The destinations' wire formats: pure functions, no I/O.

* Zoom closed-caption API: ``POST {caption URL}&seq=N&lang=xx-YY``, ``text/plain``
  UTF-8 body holding only the caption text; ``seq`` increases by one per new caption
  and stays the same on a retry; ``GET …/closedcaption/seq`` gives the last one accepted.
* YouTube Live captions over HTTP: ``POST {ingestion URL}&seq=N``, ``text/plain`` body
  of ``<UTC time>\\n<text>\\n`` blocks, time as ``YYYY-MM-DDTHH:MM:SS.mmm``; a line break
  inside a caption is ``<br>``.
* Webhook: ``POST`` of one JSON object per caption, optionally HMAC-signed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Zoom wants a language with a country; RASST's codes are bare languages.
_ZOOM_LANGS = {
    "en": "en-US",
    "de": "de-DE",
    "ja": "jp-JP",  # Zoom's own spelling for Japanese
    "zh": "zh-CN",
    "es": "es-ES",
    "fr": "fr-FR",
}


def with_query(url: str, **params: str | int) -> str:
    """``url`` with ``params`` set (replacing any the URL had)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += [(k, str(v)) for k, v in params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def zoom_seq_url(url: str) -> str:
    """Zoom's ``/closedcaption/seq`` (GET: the last accepted ``seq``) for a caption URL."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/seq"))


def parse_zoom_seq(body: str) -> int | None:
    text = body.strip()
    return int(text) if text.isdigit() else None


def zoom_lang(lang: str) -> str:
    return lang if "-" in lang else _ZOOM_LANGS.get(lang, lang)


def zoom_request(url: str, seq: int, lang: str, text: str) -> tuple[str, dict[str, str], bytes]:
    return (
        with_query(url, seq=seq, lang=zoom_lang(lang)),
        {"Content-Type": "text/plain; charset=utf-8"},
        text.encode("utf-8"),
    )


def youtube_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}"


def youtube_request(
    url: str, seq: int, at: datetime, text: str
) -> tuple[str, dict[str, str], bytes]:
    body = f"{youtube_time(at)}\n{text.replace(chr(10), '<br>')}\n"
    return (
        with_query(url, seq=seq),
        {"Content-Type": "text/plain; charset=utf-8"},
        body.encode("utf-8"),
    )


def webhook_request(
    url: str, payload: dict[str, Any], secret: str | None
) -> tuple[str, dict[str, str], bytes]:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-RASST-Signature"] = f"sha256={digest}"
    return url, headers, body
