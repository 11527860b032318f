"""The optional LLM step: keep the real domain terms among the candidates and translate them.

Talks to the gateway's OpenAI-compatible endpoint (vLLM) with constrained
decoding: every request carries ``response_format`` ``json_schema`` whose
schema lists the batch's candidates as an ``enum`` and the requested languages
as required properties, so a conforming server can only answer with
parseable JSON about those terms. The answer is still validated (pydantic,
then against the batch) because not every server enforces the schema.

Candidates go in batches of ``batch_size`` so prompts stay small; each batch
gets ``attempts`` tries (invalid JSON, a truncated answer, 5xx, 408/429 or a
timeout are retried; the retry shows the model its invalid answer); other 4xx
answers stop the whole step. Every call has connect/read timeouts and the
whole step a deadline. Nothing here raises for LLM trouble: batches that fail
are reported in :class:`FilterOutcome`, and the caller keeps their candidates
unfiltered and untranslated.

Why one module past 400 lines: prompt, batching, parsing of the answer and the deadline are
one exchange with the LLM; each piece only makes sense next to the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from glossary.validation import normalise_text

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LANGUAGE_NAMES = {
    "ar": "Arabic",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "hi": "Hindi",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ru": "Russian",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "zh": "Chinese",
}
_SYSTEM_PROMPT = (
    "You prepare glossaries for interpreters and live captioning of a talk. The candidate "
    "terms were extracted automatically from the talk's paper or slides; many are not "
    "terms. Keep a candidate only if it is a domain-specific term: a technical concept, "
    "method, model, dataset, metric, named system or an acronym of one. Drop generic "
    "words, ordinary phrases, people's names and fragments of sentences. For each kept "
    "term give its established translation into each target language; keep names and "
    "acronyms that are not translated as they are. Answer with JSON only."
)


@dataclass(frozen=True, slots=True)
class TermFilterParams:
    url: str
    # None: the first model the server lists.
    model: str | None = None
    api_key: str | None = None
    batch_size: int = 20
    # Tries per batch, the first included.
    attempts: int = 3
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    # The whole step, all batches.
    total_timeout: float = 180.0
    concurrency: int = 2
    temperature: float = 0.0
    retry_temperature: float = 0.3
    backoff_seconds: float = 0.2
    max_translation_chars: int = 120
    # Completion tokens allowed per candidate: a fixed part plus one per language.
    tokens_per_term: int = 24
    tokens_per_translation: int = 40


@dataclass(frozen=True, slots=True)
class TermCandidate:
    term: str
    context: str
    expansion: str | None = None


@dataclass(frozen=True, slots=True)
class TermVerdict:
    keep: bool
    translations: Mapping[str, str]


@dataclass(slots=True)
class FilterOutcome:
    # By candidate term; a candidate missing here was not judged.
    verdicts: dict[str, TermVerdict] = field(default_factory=dict)
    model: str | None = None
    batches: int = 0
    failed_batches: int = 0
    # Requests sent, answers that were not valid JSON for the schema, HTTP errors.
    requests: int = 0
    invalid_answers: int = 0
    http_errors: int = 0
    # Why batches failed (distinct reasons, in order).
    failures: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.failed_batches += 1
        if reason not in self.failures:
            self.failures.append(reason)


class _Judgement(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    term: str
    keep: bool
    translations: dict[str, str] = {}


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    terms: list[_Judgement]


class _Retry(Exception):
    """This try failed; another may succeed (with ``messages`` as the next conversation)."""

    def __init__(self, reason: str, messages: list[dict[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.messages = messages


class _Fatal(Exception):
    """The endpoint refuses this kind of request: stop the whole step."""


def answer_schema(terms: Sequence[str], languages: Sequence[str], max_chars: int) -> dict[str, Any]:
    """The JSON schema of one batch's answer (sent as ``response_format``)."""
    item: dict[str, Any] = {
        "type": "object",
        "properties": {
            "term": {"type": "string", "enum": list(terms)},
            "keep": {"type": "boolean"},
        },
        "required": ["term", "keep"],
        "additionalProperties": False,
    }
    if languages:
        item["properties"]["translations"] = {
            "type": "object",
            "properties": {lang: {"type": "string", "maxLength": max_chars} for lang in languages},
            "required": list(languages),
            "additionalProperties": False,
        }
        item["required"].append("translations")
    return {
        "type": "object",
        "properties": {
            "terms": {
                "type": "array",
                "items": item,
                # One judgement per candidate.
                "minItems": len(terms),
                "maxItems": len(terms),
            }
        },
        "required": ["terms"],
        "additionalProperties": False,
    }


async def filter_and_translate(
    candidates: Sequence[TermCandidate],
    languages: Sequence[str],
    params: TermFilterParams,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FilterOutcome:
    outcome = FilterOutcome()
    batches = [
        list(candidates[i : i + params.batch_size])
        for i in range(0, len(candidates), params.batch_size)
    ]
    outcome.batches = len(batches)
    if not batches:
        return outcome
    timeout = httpx.Timeout(
        connect=params.connect_timeout,
        read=params.read_timeout,
        write=params.connect_timeout,
        pool=params.connect_timeout,
    )
    headers = {"Authorization": f"Bearer {params.api_key}"} if params.api_key else {}
    done: set[int] = set()
    async with httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport) as http:
        step = _Step(http, params, languages, outcome)
        try:
            async with asyncio.timeout(params.total_timeout):
                outcome.model = params.model or await step.first_model()
                await step.run(batches, done)
        except TimeoutError:
            _fail_rest(
                outcome, batches, done, f"the LLM step took over {params.total_timeout:.0f} s"
            )
        except _Fatal as exc:  # from the model lookup
            _fail_rest(outcome, batches, done, str(exc))
    return outcome


def _fail_rest(outcome: FilterOutcome, batches: list[Any], done: set[int], reason: str) -> None:
    for index in range(len(batches)):
        if index not in done:
            done.add(index)
            outcome.fail(reason)


class _Step:
    def __init__(
        self,
        http: httpx.AsyncClient,
        params: TermFilterParams,
        languages: Sequence[str],
        outcome: FilterOutcome,
    ) -> None:
        self._http = http
        self._params = params
        self._languages = list(languages)
        self._outcome = outcome
        self._base = _api_base(params.url)
        # Set by the first request the endpoint refuses (4xx): later tries are not sent.
        self._fatal: str | None = None

    async def first_model(self) -> str:
        try:
            response = await self._http.get(f"{self._base}/v1/models")
            response.raise_for_status()
            models = [m["id"] for m in response.json().get("data", []) if isinstance(m, dict)]
        except (httpx.HTTPError, ValueError, KeyError, AttributeError) as exc:
            raise _Fatal(f"cannot list the LLM's models: {type(exc).__name__}") from None
        if not models:
            raise _Fatal("the LLM server lists no model")
        return str(models[0])

    async def run(self, batches: list[list[TermCandidate]], done: set[int]) -> None:
        gate = asyncio.Semaphore(self._params.concurrency)
        async with asyncio.TaskGroup() as group:
            for index, batch in enumerate(batches):
                group.create_task(self._batch(index, batch, gate, done))

    async def _batch(
        self, index: int, batch: list[TermCandidate], gate: asyncio.Semaphore, done: set[int]
    ) -> None:
        params = self._params
        messages = _messages(batch, self._languages)
        terms = [c.term for c in batch]
        reason = "no answer"
        async with gate:
            for attempt in range(params.attempts):
                if self._fatal is not None:
                    reason = self._fatal
                    break
                if attempt:
                    await asyncio.sleep(
                        random.uniform(0, params.backoff_seconds * 2 ** (attempt - 1))
                    )
                try:
                    verdicts = await self._ask(messages, terms, attempt)
                except _Retry as exc:
                    reason = str(exc)
                    messages = exc.messages or messages
                    continue
                except _Fatal as exc:
                    # Every other batch would be refused the same way.
                    self._fatal = reason = str(exc)
                    break
                self._outcome.verdicts.update(verdicts)
                done.add(index)
                return
        done.add(index)
        self._outcome.fail(reason)

    async def _ask(
        self, messages: list[dict[str, str]], terms: list[str], attempt: int
    ) -> dict[str, TermVerdict]:
        params = self._params
        languages = self._languages
        max_tokens = 32 + len(terms) * (
            params.tokens_per_term + params.tokens_per_translation * len(languages)
        )
        body = {
            "model": self._outcome.model,
            "messages": messages,
            "temperature": params.temperature if attempt == 0 else params.retry_temperature,
            "max_tokens": max_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "glossary_terms",
                    "schema": answer_schema(terms, languages, params.max_translation_chars),
                    "strict": True,
                },
            },
        }
        self._outcome.requests += 1
        try:
            response = await self._http.post(f"{self._base}/v1/chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise _Retry(f"the LLM timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise _Retry(f"the LLM is unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            self._outcome.http_errors += 1
            status = response.status_code
            if status >= 500 or status in (408, 429):
                raise _Retry(f"the LLM answered {status}")
            # The server's explanation goes to the log, not to the client.
            log.warning(
                "LLM refused the glossary request",
                extra={"status": status, "detail": response.text[:300]},
            )
            raise _Fatal(f"the LLM refused the request ({status})")
        try:
            choice = response.json()["choices"][0]
            content = choice["message"]["content"] or ""
            answer = _Answer.model_validate_json(content)
        except (ValueError, KeyError, IndexError, TypeError, ValidationError) as exc:
            self._outcome.invalid_answers += 1
            what = "cut off" if _finish_reason(response) == "length" else "not valid JSON"
            raise _Retry(
                f"the LLM's answer was {what} for the schema", _repair(messages, response, exc)
            ) from None
        verdicts = _verdicts(answer, terms, languages, params.max_translation_chars)
        if not verdicts:
            self._outcome.invalid_answers += 1
            raise _Retry("the LLM's answer judged none of the candidates")
        return verdicts


def _messages(batch: Sequence[TermCandidate], languages: Sequence[str]) -> list[dict[str, str]]:
    names = ", ".join(
        f"{lang} ({_LANGUAGE_NAMES.get(lang.split('-')[0], lang)})" for lang in languages
    )
    lines = []
    for number, candidate in enumerate(batch, 1):
        line = f"{number}. {json.dumps(candidate.term, ensure_ascii=False)}"
        if candidate.expansion:
            line += f" (acronym of {json.dumps(candidate.expansion, ensure_ascii=False)})"
        line += f" — context: {json.dumps(candidate.context, ensure_ascii=False)}"
        lines.append(line)
    task = (f"Target languages: {names}.\n" if languages else "No translations are needed.\n") + (
        'Answer {"terms": [{"term": ..., "keep": true|false'
        + (
            ', "translations": {' + ", ".join(f'"{lang}": ...' for lang in languages) + "}"
            if languages
            else ""
        )
        + "}, ...]} with one item per candidate.\n\nCandidates:\n"
        + "\n".join(lines)
    )
    return [
        {"role": "system", "content": _SYSTEM_PROMPT},
        {"role": "user", "content": task},
    ]


def _repair(
    messages: list[dict[str, str]], response: httpx.Response, exc: Exception
) -> list[dict[str, str]]:
    """The retry's conversation: the original request, the invalid answer, what was wrong."""
    try:
        content = str(response.json()["choices"][0]["message"]["content"] or "")
    except (ValueError, KeyError, IndexError, TypeError):
        content = ""
    problem = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return [
        *messages[:2],
        {"role": "assistant", "content": content[:2000]},
        {
            "role": "user",
            "content": f"That answer is not valid JSON for the requested schema ({problem}). "
            "Answer again with the JSON object only.",
        },
    ]


def _finish_reason(response: httpx.Response) -> str | None:
    try:
        reason = response.json()["choices"][0].get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return reason if isinstance(reason, str) else None


def _verdicts(
    answer: _Answer, terms: Sequence[str], languages: Sequence[str], max_chars: int
) -> dict[str, TermVerdict]:
    wanted = set(terms)
    verdicts: dict[str, TermVerdict] = {}
    for judgement in answer.terms:
        if judgement.term not in wanted or judgement.term in verdicts:
            continue
        translations: dict[str, str] = {}
        for lang in languages:
            value = normalise_text(judgement.translations.get(lang, ""))
            if value and len(value) <= max_chars and not _CONTROL.search(value):
                translations[lang] = value
        verdicts[judgement.term] = TermVerdict(judgement.keep, translations)
    return verdicts


def _api_base(url: str) -> str:
    """``http://host:8000`` for ``http://host:8000``, ``…/v1`` or ``…/v1/``."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url
