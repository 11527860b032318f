"""The FAISS term index: exact vs HNSW, variants, GPU selection, cache, atomic swaps."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from retriever import index as index_module
from retriever.encoders import TermVectors, l2_normalise
from retriever.index import IndexManager, IndexParams, TermIndex, cache_dir_for, faiss_has_gpu

from .helpers import HashTermEncoder, snapshot


def clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """Unit vectors around shared centres (terms of a domain crowd together; queries
    fall among them), the harder case for graph search than uniform random data."""
    centres = np.random.default_rng(0).standard_normal((clusters, dim))
    rng = np.random.default_rng(seed)
    points = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, dim))
    return l2_normalise(points)


def test_small_glossary_uses_exact_search_and_finds_itself() -> None:
    terms = [f"t{i}" for i in range(50)]
    enc = HashTermEncoder()
    idx = TermIndex.build(snapshot(terms), enc.encoder_id, enc.encode_terms(terms))
    assert idx.kind == "flat"
    found = idx.search(np.stack([enc.vector("t7"), enc.vector("t42")]), 3)
    assert found.term_ids[:, 0].tolist() == [7, 42]
    assert found.scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_variants_map_back_to_one_term_and_are_deduplicated() -> None:
    terms = ["a", "b", "c"]
    enc = HashTermEncoder(variants=3)
    vectors = enc.encode_terms(terms)
    idx = TermIndex.build(snapshot(terms), enc.encoder_id, vectors)
    assert idx.n_vectors == 9 and list(idx.rows_of(1)) == [3, 4, 5]
    found = idx.search(enc.vector("b", 2)[None, :], 3)
    assert found.term_ids[0].tolist()[0] == 1
    assert sorted(found.term_ids[0].tolist()) == [0, 1, 2]  # three distinct terms


def test_fewer_terms_than_k_pads_with_minus_one() -> None:
    enc = HashTermEncoder()
    idx = TermIndex.build(snapshot(["x", "y"]), enc.encoder_id, enc.encode_terms(["x", "y"]))
    found = idx.search(enc.vector("x")[None, :], 5)
    assert found.term_ids[0, 2:].tolist() == [-1, -1, -1]


def test_hnsw_recall_loss_against_exact_is_under_one_point() -> None:
    n, dim = 30_000, 64
    data = clustered(n, dim, clusters=40, seed=1)
    queries = clustered(300, dim, clusters=40, seed=2)
    vectors = TermVectors(data, np.arange(n))
    snap = snapshot([f"t{i}" for i in range(n)])
    params = IndexParams(exact_max_vectors=20_000, use_gpu=False)
    hnsw = TermIndex.build(snap, "x", vectors, params)
    exact = TermIndex.build(snap, "x", vectors, IndexParams(exact_max_vectors=10**9, use_gpu=False))
    assert (hnsw.kind, exact.kind) == ("hnsw", "flat")
    k = 10
    approx_ids = hnsw.search(queries, k).term_ids
    exact_ids = exact.search(queries, k).term_ids
    recall = np.mean([len(set(a) & set(e)) / k for a, e in zip(approx_ids, exact_ids, strict=True)])
    assert recall >= 0.99


def test_gpu_is_used_when_faiss_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    moved: list[Any] = []

    class FakeResources:
        pass

    def to_gpu(res: Any, device: int, index: Any) -> Any:
        moved.append((type(res), device))
        return index  # the CPU index stands in for the GPU one

    monkeypatch.setattr(faiss, "StandardGpuResources", FakeResources, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", to_gpu, raising=False)
    monkeypatch.setattr(index_module, "_gpu_resources", None)
    assert faiss_has_gpu()
    enc = HashTermEncoder()
    terms = [f"t{i}" for i in range(30)]
    big = IndexParams(exact_max_vectors=10)  # would be HNSW on a CPU
    idx = TermIndex.build(snapshot(terms), enc.encoder_id, enc.encode_terms(terms), big)
    assert idx.kind == "gpu-flat" and moved == [(FakeResources, 0)]
    assert idx.search(enc.vector("t3")[None, :], 1).term_ids[0, 0] == 3


def test_cpu_when_faiss_has_no_gpu_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(faiss, "StandardGpuResources", raising=False)
    assert not faiss_has_gpu()
    enc = HashTermEncoder()
    idx = TermIndex.build(snapshot(["a"]), enc.encoder_id, enc.encode_terms(["a"]))
    assert idx.kind == "flat"


def test_gpu_probe_failure_reads_as_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> int:
        raise RuntimeError("driver")

    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", broken, raising=False)
    assert not faiss_has_gpu()


@pytest.mark.parametrize("exact_max", [10**6, 100])
def test_save_and_load_round_trip(tmp_path: Path, exact_max: int) -> None:
    terms = [f"term {i}" for i in range(300)]
    enc = HashTermEncoder(variants=2)
    snap = snapshot(terms, gid="acme/talks", version=3)
    params = IndexParams(exact_max_vectors=exact_max, use_gpu=False)
    idx = TermIndex.build(snap, enc.encoder_id, enc.encode_terms(terms), params)
    directory = cache_dir_for(tmp_path, snap.id, snap.version, enc.encoder_id)
    assert directory.parent.parent.parent == tmp_path  # the id's slash is encoded
    idx.save(directory)
    loaded = TermIndex.load(directory, snap, enc.encoder_id, params)
    assert loaded is not None and loaded.kind == idx.kind
    q = np.stack([enc.vector("term 5"), enc.vector("term 250", 1)])
    assert loaded.search(q, 5).term_ids.tolist() == idx.search(q, 5).term_ids.tolist()
    # A different encoder or different terms under the same key is a cache miss.
    assert TermIndex.load(directory, snap, "other", params) is None
    assert TermIndex.load(directory, snapshot(terms[:-1], "acme/talks", 3), enc.encoder_id) is None


def test_manager_builds_in_background_and_reuses_the_disk_cache(tmp_path: Path) -> None:
    calls: list[int] = []

    class CountingEncoder(HashTermEncoder):
        def encode_terms(self, terms: Any) -> TermVectors:
            calls.append(len(terms))
            return super().encode_terms(terms)

    snap = snapshot(["alpha", "beta"])
    first = IndexManager(CountingEncoder(), IndexParams(use_gpu=False), cache_root=tmp_path)
    assert first.current("g") is None
    built = first.update(snap).result(timeout=10)
    assert first.current("g") is built
    assert first.update(snap).result() is built  # already current: no rebuild
    first.close()
    second = IndexManager(CountingEncoder(), IndexParams(use_gpu=False), cache_root=tmp_path)
    second.update(snap).result(timeout=10)
    second.close()
    assert calls == [2]  # the second manager loaded from disk


def test_older_version_never_replaces_a_newer_one() -> None:
    manager = IndexManager(HashTermEncoder(), IndexParams(use_gpu=False))
    manager.update(snapshot(["new"], version=5)).result(timeout=10)
    manager.update(snapshot(["old"], version=4)).result(timeout=10)
    current = manager.current("g")
    assert current is not None and current.snapshot.version == 5
    manager.close()


def test_several_glossaries_are_searched() -> None:
    enc = HashTermEncoder()
    manager = IndexManager(enc, IndexParams(use_gpu=False))
    manager.update(snapshot(["a", "b"], gid="g1")).result(timeout=10)
    manager.update(snapshot(["c"], gid="g2")).result(timeout=10)
    results = manager.search(["g1", "g2", "missing"], enc.vector("c")[None, :], 2)
    assert [r.index.snapshot.id for r in results] == ["g1", "g2"]
    assert results[1].term_ids[0, 0] == 0 and results[1].scores[0, 0] == pytest.approx(1, abs=1e-5)
    manager.close()


def test_swap_under_concurrent_queries_shows_old_or_new_only() -> None:
    """Regression guard for the atomic swap: 4 readers never see a half-built index."""
    enc = HashTermEncoder(dim=16)
    old_terms = [f"old{i}" for i in range(2_000)]
    new_terms = [f"new{i}" for i in range(3_000)]
    manager = IndexManager(enc, IndexParams(use_gpu=False))
    manager.update(snapshot(old_terms, version=1)).result(timeout=10)
    query = np.stack([enc.vector("old3"), enc.vector("new3")])
    stop = threading.Event()
    errors: list[BaseException] = []
    versions: set[int] = set()

    def reader() -> None:
        try:
            while not stop.is_set():
                for result in manager.search(["g"], query, 10):
                    snap = result.index.snapshot
                    versions.add(snap.version)
                    sources = [snap.entries[i].source for i in result.term_ids[0] if i >= 0]
                    prefix = "old" if snap.version == 1 else "new"
                    assert len(sources) == 10 and all(s.startswith(prefix) for s in sources)
                    best = (
                        sources[0]
                        if snap.version == 1
                        else snap.entries[result.term_ids[1, 0]].source
                    )
                    assert best == ("old3" if snap.version == 1 else "new3")
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    manager.update(snapshot(new_terms, version=2)).result(timeout=10)
    time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    manager.close()
    assert not errors, errors[0]
    assert versions == {1, 2}
