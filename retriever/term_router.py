"""Zero-setup sessions: which slices of a term memory to report terms from, decided from speech.

A tenant's term memory is a set of glossaries ("slices"), each with a domain label; base
slices (common terms) are always on. A session started with ``term_memory: "auto"``
searches every slice but reports terms only from the base slices and the domain slices
switched on. The router switches domain slices from retrieval evidence over the last few
minutes of speech, as AutoTerm-SST (2026) routes a working glossary out of a large memory:

* **evidence**: every hit at or above τ from a domain slice counts once per occurrence,
  divided among the slices that hold the same term (a term every domain shares says
  nothing about the domain), and only distinct terms count in full (a talk repeating one
  acronym is not three pieces of evidence);
* **switch on** when a slice has at least ``min_terms`` distinct terms of evidence, holds
  at least ``min_share`` of all domain evidence and leads the runner-up by ``margin``;
* **switch off** (hysteresis) when its evidence falls under ``off_terms`` within the
  horizon, e.g. after the talk changed topic.

Every change is a :class:`RoutingDecision` (with the evidence and a confidence) that the
gateway sends as a ``term_memory.routed`` event. The per-chunk budget (top-10) is kept:
the retriever ranks the reportable hits only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kernel.frames import TermHit

RATE = 16_000


@dataclass(frozen=True, slots=True)
class Slice:
    glossary_id: str
    domain: str
    base: bool = False


@dataclass(frozen=True, slots=True)
class RouterParams:
    # Evidence from this much speech back (seconds of audio).
    horizon_seconds: float = 180.0
    # Switch a domain on: distinct terms of evidence, share of all domain evidence, and
    # lead over the runner-up (ratio).
    min_terms: float = 3.0
    min_share: float = 0.5
    margin: float = 2.0
    # Switch it off again below this much evidence in the horizon.
    off_terms: float = 1.0
    # Domains on at once (the per-chunk budget is shared by them).
    max_active: int = 1
    # A repeated term's later occurrences count this much each.
    repeat_weight: float = 0.25
    # Cold start: until a domain is switched on, report every domain holding at least this
    # share of the leader's evidence (all of them before any evidence). Without it, the
    # terms of a talk's first sentences were lost: 11 recall points on 8-segment ACL talks.
    cold_start_share: float | None = 0.5


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    chunk_index: int
    active: tuple[str, ...]  # domains switched on now (base slices are always on)
    switched_on: tuple[str, ...]
    switched_off: tuple[str, ...]
    evidence: dict[str, float]
    confidence: float  # the leading domain's share of all domain evidence


@dataclass(slots=True)
class _Heard:
    sample: int
    weight: float


@dataclass
class TermRouter:
    """One session's routing state. Not thread-safe: one chunk at a time."""

    slices: Sequence[Slice]
    params: RouterParams = field(default_factory=RouterParams)

    def __post_init__(self) -> None:
        self._domain_of = {s.glossary_id: s.domain for s in self.slices if not s.base}
        self._base_ids = tuple(s.glossary_id for s in self.slices if s.base)
        self._active: list[str] = []
        # (domain, term) -> when it was heard, with its weight.
        self._heard: dict[tuple[str, str], list[_Heard]] = defaultdict(list)
        self._holders: dict[str, set[str]] = defaultdict(set)  # term -> domains holding it
        self._scores: dict[str, float] = {}  # the evidence after the last chunk

    def register_terms(self, glossary_id: str, terms: Iterable[str]) -> None:
        """Tell the router a domain slice's terms (to split shared terms' evidence)."""
        domain = self._domain_of.get(glossary_id)
        if domain is None:
            return
        for term in terms:
            self._holders[term.lower()].add(domain)

    @property
    def active_domains(self) -> tuple[str, ...]:
        return tuple(self._active)

    def reportable_ids(self) -> tuple[str, ...]:
        """Glossaries whose terms may be reported now: base slices and active domains."""
        active = set(self._active)
        share = self.params.cold_start_share
        if not active and share is not None:
            lead = max(self._scores.values(), default=0.0)
            active = {
                d for d in self._domain_of.values() if self._scores.get(d, 0.0) >= share * lead
            }
        return self._base_ids + tuple(
            gid for gid, domain in self._domain_of.items() if domain in active
        )

    def evidence(self, now_sample: int) -> dict[str, float]:
        horizon = round(self.params.horizon_seconds * RATE)
        scores: dict[str, float] = defaultdict(float)
        for (domain, _term), heard in self._heard.items():
            recent = [h for h in heard if h.sample >= now_sample - horizon]
            if not recent:
                continue
            weight = recent[0].weight
            scores[domain] += weight * (1.0 + self.params.repeat_weight * (len(recent) - 1))
        return {d: round(scores.get(d, 0.0), 3) for d in sorted(set(self._domain_of.values()))}

    def observe(
        self, chunk_index: int, end_sample: int, hits: Sequence[TermHit]
    ) -> RoutingDecision | None:
        """Take one chunk's evidence (hits at or above τ, any slice); a decision if it changed."""
        for hit in hits:
            domain = self._domain_of.get(hit.glossary_id)
            if domain is None:
                continue
            heard = self._heard[(domain, hit.source.lower())]
            # Once per occurrence: the look-back reports a term again in the next chunk.
            if heard and hit.start_sample < heard[-1].sample + RATE:
                continue
            holders = self._holders.get(hit.source.lower()) or {domain}
            heard.append(_Heard(hit.end_sample, 1.0 / max(len(holders), 1)))
        scores = self._scores = self.evidence(end_sample)
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])
        total = sum(scores.values())
        p = self.params
        on: list[str] = []
        off = [d for d in self._active if scores.get(d, 0.0) < p.off_terms]
        for d in off:
            self._active.remove(d)
        if ranked and len(self._active) < p.max_active:
            lead, lead_score = ranked[0]
            runner = ranked[1][1] if len(ranked) > 1 else 0.0
            if (
                lead not in self._active
                and lead_score >= p.min_terms
                and lead_score >= p.min_share * total
                and lead_score >= p.margin * runner
            ):
                self._active.append(lead)
                on.append(lead)
        if not on and not off:
            return None
        confidence = ranked[0][1] / total if total > 0 else 0.0
        return RoutingDecision(
            chunk_index, tuple(self._active), tuple(on), tuple(off), scores, round(confidence, 3)
        )
