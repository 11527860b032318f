"""The FAISS term index of one glossary version, and its lifecycle.

:class:`TermIndex` is immutable once built: the snapshot it was built from, the
FAISS index over the snapshot's term vectors (inner product = cosine on unit
vectors) and the map from vector rows back to entries (a term may have several
vectors, e.g. pronunciation variants). Readers hold a reference to one
``TermIndex`` for the whole of a query, so a concurrent swap never shows them a
half-built index or a vector space that does not match the entries.

:class:`IndexManager` builds indexes in a background thread (per glossary
version, cached on disk by ``(glossary id, version, encoder id)``) and swaps the
current one per glossary with a single reference assignment.

Index choice: exact ``IndexFlatIP`` below ``exact_max_vectors`` (a brute-force
scan of 20k × 1024 floats is a few ms and has no recall loss), HNSW above it on
CPU. On a GPU every size stays exact: a GPU scans 100k × 1024 in well under a
millisecond, and FAISS has no GPU HNSW. The phonetic encoder's glossaries from
``gram_min_terms`` on get a phone-trigram inverted index instead
(:mod:`retriever.gram_index`: built in seconds where HNSW took minutes, and a better
candidate generator than the exact vector search); the manager reports each glossary's
build state and progress (:class:`IndexState`) so sessions and REST can say so.

Why one module past 400 lines: the index types, their choice by size, the on-disk cache and
the background builder share one snapshot/version scheme; apart, each would re-state it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import faiss
import numpy as np

from glossary.model import GlossarySnapshot
from retriever.encoders import TermEncoder, TermVectors

log = logging.getLogger(__name__)

_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class IndexParams:
    # Exact search up to this many vectors; HNSW above (CPU only).
    exact_max_vectors: int = 20_000
    # The phonetic encoder's glossaries from this many terms: the phone-trigram inverted
    # index (retriever.gram_index) instead of flat/HNSW over n-gram vectors. HNSW took
    # ~100 s at 100k terms; the flat top-100 already missed gold terms at 10k (recall@10
    # 0.82 against 0.98 for the trigram candidates, bench/index_scale.py).
    gram_min_terms: int = 2_000
    # HNSW graph degree and beam widths. M = 32 with efSearch = 128 keeps recall@10
    # within a point of exact search on clustered data (tests/retriever/test_index.py
    # measures it); efConstruction = 80 trades build time for graph quality.
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128
    # None: use a GPU when faiss has GPU support and sees a device.
    use_gpu: bool | None = None
    gpu_device: int = 0


def faiss_has_gpu() -> bool:
    """True when this faiss build has GPU support and a device is visible."""
    if not hasattr(faiss, "StandardGpuResources"):
        return False  # faiss-cpu
    try:
        return int(faiss.get_num_gpus()) > 0
    except Exception:  # a broken driver reads as "no GPU", never as a crash
        log.warning("faiss GPU probe failed; using the CPU index", exc_info=True)
        return False


_threads_configured = False


def configure_faiss_threads(n: int = 1) -> None:
    """Set FAISS's OpenMP thread count for this process (once).

    Retrieval queries are small (a handful of windows against ≤ 100k vectors).
    With several OpenMP threads the per-query p95 latency spiked to 0.15–1.5 s on
    the 2-core CPU machines (thread wake-up and contention with the decoders),
    while one thread was steady; concurrency comes from sessions, not from
    parallelising one tiny query.
    """
    global _threads_configured
    if not _threads_configured:
        faiss.omp_set_num_threads(n)
        _threads_configured = True


_gpu_lock = threading.Lock()
_gpu_resources: Any = None


def _gpu_resources_for() -> Any:
    global _gpu_resources
    with _gpu_lock:
        if _gpu_resources is None:
            _gpu_resources = faiss.StandardGpuResources()
        return _gpu_resources


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Top terms per query of one index: ``term_ids`` −1 where fewer than k exist."""

    index: TermIndex
    scores: np.ndarray  # (q, k) float32, best first
    term_ids: np.ndarray  # (q, k) int64, positions in index.snapshot.entries


class TermIndex:
    """One glossary version's term vectors in FAISS. Immutable; thread-safe to search."""

    def __init__(
        self,
        snapshot: GlossarySnapshot,
        encoder_id: str,
        owners: np.ndarray,
        faiss_index: Any,
        kind: str,
    ) -> None:
        owners = np.asarray(owners, dtype=np.int64)
        if owners.size and (np.any(np.diff(owners) < 0) or owners[-1] >= len(snapshot.entries)):
            raise ValueError("term vector rows must be grouped by owner, in entry order")
        self.snapshot = snapshot
        self.encoder_id = encoder_id
        self.kind = kind
        self._index = faiss_index
        # Only the row -> term map is kept; the vectors live in the FAISS index.
        self._owners = owners
        # rows of term t: _row_start[t] : _row_start[t + 1]
        counts = np.bincount(self._owners, minlength=len(snapshot.entries))
        self._row_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._max_rows_per_term = int(counts.max()) if len(counts) else 1
        # GPU indexes are not safe for concurrent calls on one resource object.
        self._lock: threading.Lock | None = threading.Lock() if kind.startswith("gpu") else None

    # -- building ------------------------------------------------------------

    @classmethod
    def build(
        cls,
        snapshot: GlossarySnapshot,
        encoder_id: str,
        vectors: TermVectors,
        params: IndexParams | None = None,
    ) -> TermIndex:
        """Blocking (seconds for HNSW at 100k); call it off the event loop."""
        params = params or IndexParams()
        configure_faiss_threads()
        data = np.ascontiguousarray(vectors.vectors, dtype=np.float32)
        n, dim = data.shape
        use_gpu = faiss_has_gpu() if params.use_gpu is None else params.use_gpu
        if use_gpu:
            cpu = faiss.IndexFlatIP(dim)
            cpu.add(data)
            gpu = faiss.index_cpu_to_gpu(_gpu_resources_for(), params.gpu_device, cpu)
            return cls(snapshot, encoder_id, vectors.owners, gpu, "gpu-flat")
        if n <= params.exact_max_vectors:
            flat = faiss.IndexFlatIP(dim)
            flat.add(data)
            return cls(snapshot, encoder_id, vectors.owners, flat, "flat")
        hnsw = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = params.hnsw_ef_construction
        hnsw.hnsw.efSearch = params.hnsw_ef_search
        hnsw.add(data)
        return cls(snapshot, encoder_id, vectors.owners, hnsw, "hnsw")

    # -- reading -------------------------------------------------------------

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.snapshot.id, self.snapshot.version, self.encoder_id)

    @property
    def n_terms(self) -> int:
        return len(self.snapshot.entries)

    @property
    def n_vectors(self) -> int:
        return int(self._owners.shape[0])

    def rows_of(self, term_id: int) -> range:
        """Vector rows (e.g. pronunciation variants) of one term."""
        return range(int(self._row_start[term_id]), int(self._row_start[term_id + 1]))

    def search(self, queries: np.ndarray, k: int) -> SearchResult:
        """Top-``k`` distinct terms per query row by best-variant inner product."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2:
            raise ValueError("queries must be (q, dim)")
        n_q = q.shape[0]
        scores = np.full((n_q, k), -np.inf, dtype=np.float32)
        ids = np.full((n_q, k), -1, dtype=np.int64)
        if n_q == 0 or self.n_vectors == 0 or k <= 0:
            return SearchResult(self, scores, ids)
        # Ask for enough rows that k distinct terms survive de-duplication of variants.
        k_rows = min(self.n_vectors, k * self._max_rows_per_term)
        if self._lock is not None:
            with self._lock:
                row_scores, rows = self._index.search(q, k_rows)
        else:
            row_scores, rows = self._index.search(q, k_rows)
        for i in range(n_q):
            seen: set[int] = set()
            filled = 0
            for score, row in zip(row_scores[i], rows[i], strict=True):
                if row < 0:
                    break
                term = int(self._owners[row])
                if term in seen:
                    continue
                seen.add(term)
                scores[i, filled] = score
                ids[i, filled] = term
                filled += 1
                if filled == k:
                    break
        return SearchResult(self, scores, ids)

    # -- persistence ---------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write to ``directory`` atomically (a temp dir renamed into place)."""

        def write(tmp: Path) -> None:
            cpu = (
                faiss.index_gpu_to_cpu(self._index) if self.kind.startswith("gpu") else self._index
            )
            faiss.write_index(cpu, str(tmp / "index.faiss"))
            np.save(tmp / "owners.npy", self._owners)

        save_atomically(directory, write, cache_meta(self, self.kind, _FORMAT_VERSION))

    @classmethod
    def load(
        cls,
        directory: Path,
        snapshot: GlossarySnapshot,
        encoder_id: str,
        params: IndexParams | None = None,
    ) -> TermIndex | None:
        """The saved index for this snapshot and encoder, or None if absent or stale."""
        params = params or IndexParams()
        try:
            meta = json.loads((directory / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if (
            meta.get("format") != _FORMAT_VERSION
            or meta.get("kind") == "phone-trigram"  # retriever.gram_index reads those
            or meta.get("encoder_id") != encoder_id
            or meta.get("terms_digest") != terms_digest(snapshot)
        ):
            return None
        configure_faiss_threads()
        owners = np.load(directory / "owners.npy")
        index: Any = faiss.read_index(str(directory / "index.faiss"))
        use_gpu = faiss_has_gpu() if params.use_gpu is None else params.use_gpu
        if use_gpu:
            # A saved CPU index becomes an exact GPU index (see the module docstring).
            vectors = TermVectors(index.reconstruct_n(0, index.ntotal), owners)
            return cls.build(snapshot, encoder_id, vectors, params)
        if meta["kind"] == "hnsw":
            index.hnsw.efSearch = params.hnsw_ef_search
        return cls(snapshot, encoder_id, owners, index, str(meta["kind"]))


def terms_digest(snapshot: GlossarySnapshot) -> str:
    """Digest of the source terms, in order: guards a cache entry against a reused key."""
    h = hashlib.sha256()
    for entry in snapshot.entries:
        h.update(entry.source.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def cache_dir_for(root: Path, glossary_id: str, version: int, encoder_id: str) -> Path:
    """``root/<glossary>/v<version>/<encoder>``, names percent-encoded to be path-safe."""
    return root / quote(glossary_id, safe="") / f"v{version}" / quote(encoder_id, safe="")


BuildListener = Callable[[TermIndex], None]


@dataclass(frozen=True, slots=True)
class IndexState:
    """Where one glossary's index stands: what sessions and ``/readyz`` report.

    ``searchable_version`` is the version searched now (None: nothing yet), which may
    be older than ``version`` (the newest asked for) while that one builds.
    """

    glossary_id: str
    version: int
    state: str  # "building" | "ready" | "failed"
    progress: float  # of the newest version's build, 0…1
    searchable_version: int | None
    n_terms: int
    kind: str | None

    @property
    def searchable(self) -> bool:
        return self.searchable_version is not None


class IndexManager:
    """Current term index per glossary, rebuilt in the background and swapped atomically.

    Shared by all sessions of a process. ``update`` schedules a build; when it
    finishes, the new index replaces the current one for its glossary only if
    its version is newer. Reads (``current``, ``search``) take no lock: a dict
    lookup returns either the old or the new immutable ``TermIndex``.
    """

    def __init__(
        self,
        term_encoder: TermEncoder,
        params: IndexParams | None = None,
        cache_root: Path | None = None,
        max_workers: int = 1,
    ) -> None:
        self._encoder = term_encoder
        self._params = params or IndexParams()
        self._cache_root = cache_root
        self._current: dict[str, TermIndex] = {}
        self._pending: dict[tuple[str, int], Future[TermIndex]] = {}
        self._lock = threading.Lock()  # guards _pending and the compare-and-swap
        self._listeners: list[BuildListener] = []
        # Newest version asked for per glossary, its build progress, and failures.
        self._wanted: dict[str, GlossarySnapshot] = {}
        self._progress: dict[tuple[str, int], float] = {}
        self._failed: set[tuple[str, int]] = set()
        # Versions known to be coming (an upload) whose snapshot is still being loaded.
        self._announced: dict[str, int] = {}
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="index")

    @property
    def encoder_id(self) -> str:
        return self._encoder.encoder_id

    def add_listener(self, listener: BuildListener) -> None:
        """Called (in the build thread) after an index becomes current."""
        self._listeners.append(listener)

    def update(self, snapshot: GlossarySnapshot) -> Future[TermIndex]:
        """Make ``snapshot`` current once its index is built; returns the build's future.

        A version that is already current or already building is not built again.
        """
        key = snapshot.key
        with self._lock:
            current = self._current.get(snapshot.id)
            if current is not None and current.snapshot.version == snapshot.version:
                done: Future[TermIndex] = Future()
                done.set_result(current)
                return done
            pending = self._pending.get(key)
            if pending is not None:
                return pending
            wanted = self._wanted.get(snapshot.id)
            if wanted is None or wanted.version <= snapshot.version:
                self._wanted[snapshot.id] = snapshot
            self._progress[key] = 0.0
            self._failed.discard(key)
            future = self._executor.submit(self._build_and_swap, snapshot)
            self._pending[key] = future
            return future

    def current(self, glossary_id: str) -> TermIndex | None:
        return self._current.get(glossary_id)

    def announce(self, glossary_id: str, version: int) -> None:
        """A version is coming (its snapshot is being loaded): report it as building."""
        with self._lock:
            if version > self._announced.get(glossary_id, 0):
                self._announced[glossary_id] = version

    def withdraw(self, glossary_id: str, version: int) -> None:
        """An announced version will not come (its snapshot could not be loaded)."""
        with self._lock:
            if self._announced.get(glossary_id) == version:
                del self._announced[glossary_id]

    def state(self, glossary_id: str) -> IndexState | None:
        """None for a glossary never given to this manager."""
        with self._lock:
            wanted = self._wanted.get(glossary_id)
            current = self._current.get(glossary_id)
            announced = self._announced.get(glossary_id, 0)
            if announced > (wanted.version if wanted is not None else 0):
                return IndexState(
                    glossary_id,
                    announced,
                    "building",
                    0.0,
                    current.snapshot.version if current is not None else None,
                    len(wanted.entries) if wanted is not None else 0,
                    current.kind if current is not None else None,
                )
            if wanted is None:
                return None
            key = wanted.key
            if current is not None and current.snapshot.version >= wanted.version:
                state, progress = "ready", 1.0
            elif key in self._failed:
                state, progress = "failed", self._progress.get(key, 0.0)
            else:
                state, progress = "building", self._progress.get(key, 0.0)
            return IndexState(
                glossary_id,
                wanted.version,
                state,
                round(progress, 3),
                current.snapshot.version if current is not None else None,
                len(wanted.entries),
                current.kind if current is not None else None,
            )

    def states(self) -> list[IndexState]:
        with self._lock:
            ids = list(dict.fromkeys([*self._wanted, *self._announced]))
        return [s for s in (self.state(g) for g in ids) if s is not None]

    def indexes(self, glossary_ids: Iterable[str]) -> list[TermIndex]:
        """The current indexes of these glossaries (those built so far)."""
        found = (self._current.get(g) for g in glossary_ids)
        return [index for index in found if index is not None]

    def search(
        self, glossary_ids: Sequence[str], queries: np.ndarray, k: int
    ) -> list[SearchResult]:
        """Search every listed glossary's current index (merging is the caller's job)."""
        return [index.search(queries, k) for index in self.indexes(glossary_ids)]

    def drop(self, glossary_id: str) -> None:
        with self._lock:
            self._current.pop(glossary_id, None)
            self._wanted.pop(glossary_id, None)
            self._announced.pop(glossary_id, None)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    # -- build thread --------------------------------------------------------

    def _build_and_swap(self, snapshot: GlossarySnapshot) -> TermIndex:
        try:
            index = self._load_or_build(snapshot)
            with self._lock:
                current = self._current.get(snapshot.id)
                if current is None or current.snapshot.version < snapshot.version:
                    self._current[snapshot.id] = index  # the atomic swap
                    swapped = True
                else:
                    swapped = False
            if swapped:
                for listener in self._listeners:
                    listener(index)
            return index
        except BaseException:
            with self._lock:
                self._failed.add(snapshot.key)
            log.exception("index build failed for %s v%d", snapshot.id, snapshot.version)
            raise
        finally:
            with self._lock:
                self._pending.pop(snapshot.key, None)
                if snapshot.key not in self._failed:
                    self._progress.pop(snapshot.key, None)

    def _load_or_build(self, snapshot: GlossarySnapshot) -> TermIndex:
        from retriever.gram_index import PhoneGramIndex, build_gram_index
        from retriever.phonetic import PhoneticTermEncoder

        encoder_id = self._encoder.encoder_id
        grams = (
            isinstance(self._encoder, PhoneticTermEncoder)
            and len(snapshot.entries) >= self._params.gram_min_terms
        )
        directory = None
        if self._cache_root is not None:
            directory = cache_dir_for(self._cache_root, snapshot.id, snapshot.version, encoder_id)
            loaded: TermIndex | None = (
                PhoneGramIndex.load_grams(directory, snapshot, encoder_id)
                if grams
                else TermIndex.load(directory, snapshot, encoder_id, self._params)
            )
            if loaded is not None:
                return loaded

        def progress(fraction: float) -> None:
            self._progress[snapshot.key] = fraction

        index: TermIndex
        if grams:
            # Unchanged terms of the version searched now are not pronounced again.
            index = build_gram_index(
                snapshot, encoder_id, self._current.get(snapshot.id), progress=progress
            )
        else:
            vectors = self._encoder.encode_terms([entry.source for entry in snapshot.entries])
            index = TermIndex.build(snapshot, encoder_id, vectors, self._params)
        if directory is not None:
            try:
                index.save(directory)
            except OSError:
                # A read-only or full cache disk costs a rebuild next time, nothing more.
                log.warning("could not cache the index in %s", directory, exc_info=True)
        return index


def cache_meta(index: Any, kind: str, format_version: int) -> dict[str, object]:
    """What a cached index must match to be reused: its glossary version, encoder and terms."""
    return {
        "format": format_version,
        "glossary_id": index.snapshot.id,
        "version": index.snapshot.version,
        "encoder_id": index.encoder_id,
        "kind": kind,
        "n_terms": index.n_terms,
        "terms_digest": terms_digest(index.snapshot),
    }


def save_atomically(
    directory: Path, write: Callable[[Path], None], meta: dict[str, object]
) -> None:
    """``write`` an index's files and ``meta.json`` into a temp dir, then rename it into place."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent))
    try:
        write(tmp)
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, directory)
        except OSError:
            # Another builder won the race; its copy is equivalent.
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
