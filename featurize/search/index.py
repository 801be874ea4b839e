"""The nearest-neighbour index over a run's PCA features, in faiss (no Spark here).

Similarity is the cosine: vectors are scaled to unit length and compared by their inner
product. The kind is chosen by size, as autofaiss does: an exact ``flat`` index up to
:data:`EXACT_MAX` vectors (every query reads every vector; docs/PERFORMANCE.md, "Similar
images", measures where that stops paying), an inverted-file index beyond it
(``ivf_flat``: ~4·√n cells, exact similarities inside the cells a query probes). How
many cells a query probes is not a guess: the builder measures recall@10 against exact
search on a sample of the run's own vectors and takes the smallest ``nprobe`` that
reaches :data:`TARGET_RECALL`.

:class:`IndexBuilder` takes the vectors in batches, so the caller streams them; the
exact answers for the recall sample are accumulated batch by batch as well.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Up to this many vectors the index is exact (``flat``).
EXACT_MAX = 200_000
#: The approximate index's recall@10 against exact search, at least.
TARGET_RECALL = 0.95
#: Neighbours a recall is measured at.
RECALL_AT = 10
#: Queries the recall is measured on (the first rows of a random sample of the run).
RECALL_QUERIES = 1_000
#: Vectors the coarse quantizer of an IVF index is trained on, per cell.
TRAIN_PER_CELL = 64
INDEX_FILE = "index.faiss"
#: Cosine at or above which two photos are taken for the same shot: train's leakage
#: check by default, and the usual ``index_features --duplicates``.
DUPLICATE_THRESHOLD = 0.95


def unit_rows(x: np.ndarray) -> np.ndarray:
    """float32 rows scaled to length 1 (a zero row stays zero: similar to nothing).

    >>> unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def cells_for(n: int) -> int:
    """IVF cells for ``n`` vectors: ~4·√n (faiss' guidance for IVF sizes), at least 1.

    >>> cells_for(1_000_000), cells_for(250_000)
    (4000, 2000)
    """
    return max(1, int(round(4 * np.sqrt(n))))


def kind_for(n: int, exact_max: int = EXACT_MAX) -> str:
    return "flat" if n <= exact_max else "ivf_flat"


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` largest scores (descending) and their ids (same shape as scores).

    >>> top_k(np.array([[0.1, 0.9, 0.5]]), np.array([[7, 8, 9]]), 2)
    (array([[0.9, 0.5]]), array([[8, 9]]))
    """
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    s = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-s, axis=1, kind="stable")
    return (np.take_along_axis(s, order, axis=1),
            np.take_along_axis(np.take_along_axis(ids, part, axis=1), order, axis=1))


@dataclass
class _ExactSample:
    """The exact ``RECALL_AT + 1`` nearest of a few query vectors, kept up to date as the
    vectors stream past (the +1: a query finds itself)."""

    queries: np.ndarray
    scores: np.ndarray = field(init=False)
    ids: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.scores = np.full((len(self.queries), 0), -np.inf, dtype=np.float32)
        self.ids = np.zeros((len(self.queries), 0), dtype=np.int64)

    def add(self, x: np.ndarray, first_id: int) -> None:
        if not len(self.queries) or not len(x):
            return
        s = self.queries @ x.T
        ids = np.broadcast_to(np.arange(first_id, first_id + len(x)), s.shape)
        self.scores, self.ids = top_k(np.hstack([self.scores, s]),
                                      np.hstack([self.ids, ids]), RECALL_AT + 1)


def recall_at(exact: np.ndarray, found: np.ndarray, query_ids: np.ndarray,
              k: int = RECALL_AT) -> float:
    """Mean share of each query's exact ``k`` nearest (itself left out) that ``found``
    holds among its own first ``k`` (itself left out).

    >>> recall_at(np.array([[0, 1, 2]]), np.array([[0, 2, 3]]), np.array([0]), k=2)
    0.5
    """
    shares = []
    for q, e, f in zip(query_ids, exact, found):
        want = [i for i in e if i != q][:k]
        got = {i for i in f if i != q and i >= 0}
        got = set([i for i in f if i in got][:k])
        shares.append(len(got & set(want)) / max(len(want), 1))
    return float(np.mean(shares)) if shares else 1.0


class IndexBuilder:
    """Build the index of ``n`` vectors of dimension ``dim`` from batches.

    ``sample`` (rows of the run, unit length) trains an IVF index's cells and holds the
    recall queries; the rows are identified by their position in the stream.
    """

    def __init__(self, n: int, dim: int, sample: np.ndarray, exact_max: int = EXACT_MAX,
                 target_recall: float = TARGET_RECALL) -> None:
        import faiss

        self.n, self.dim, self.target = n, dim, target_recall
        self.kind = kind_for(n, exact_max)
        self.started = time.perf_counter()
        sample = unit_rows(sample)
        if self.kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
            self.cells = None
        else:
            self.cells = min(cells_for(n), max(1, len(sample) // 39))
            quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFFlat(quantizer, dim, self.cells,
                                            faiss.METRIC_INNER_PRODUCT)
            self.index.train(sample[: self.cells * TRAIN_PER_CELL])
        self.exact = _ExactSample(sample[:RECALL_QUERIES])
        self.added = 0

    def add(self, x: np.ndarray) -> None:
        x = unit_rows(x)
        self.index.add(x)
        self.exact.add(x, self.added)
        self.added += len(x)

    def finish(self) -> dict[str, Any]:
        """Tune ``nprobe`` (IVF) and return what ``index.json`` records."""
        if self.added != self.n:
            raise ValueError(f"{self.added} vectors added, {self.n} announced")
        build = time.perf_counter() - self.started
        queries = self.exact.queries
        # a sample row is its own nearest: its id is the exact search's best
        query_ids = self.exact.ids[:, 0] if len(queries) else np.zeros(0, np.int64)
        nprobe, recall = None, 1.0
        if self.kind == "ivf_flat":
            nprobe = 1
            while True:
                self.index.nprobe = nprobe
                found = self.index.search(queries, RECALL_AT + 1)[1]
                recall = recall_at(self.exact.ids, found, query_ids)
                if recall >= self.target or nprobe >= self.cells:
                    break
                nprobe = min(nprobe * 2, self.cells)
        elif len(queries):
            recall = recall_at(self.exact.ids, self.index.search(queries, RECALL_AT + 1)[1],
                               query_ids)
        started = time.perf_counter()
        if len(queries):
            self.index.search(queries, RECALL_AT + 1)
        per_query = (time.perf_counter() - started) / max(len(queries), 1)
        return {"kind": self.kind, "size": self.n, "dim": self.dim, "similarity": "cosine",
                "cells": self.cells, "nprobe": nprobe,
                f"recall_at_{RECALL_AT}": recall, "recall_queries": len(queries),
                "target_recall": self.target if self.kind != "flat" else None,
                "build_seconds": round(build, 3),
                "query_ms_per_photo": round(per_query * 1000, 4)}


def save(index: Any, path: str) -> None:
    import faiss

    faiss.write_index(index, path)


_LOADED: dict[tuple[str, float], Any] = {}


def load(path: str, nprobe: int | None = None) -> Any:
    """The index at ``path``, memory-mapped and cached per process (a Python worker
    loads it once, and the workers of one node share its pages)."""
    import faiss

    key = (path, os.path.getmtime(path))
    if key not in _LOADED:
        _LOADED.clear()
        index = faiss.read_index(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        if nprobe is not None:
            index.nprobe = nprobe
        _LOADED[key] = index
    return _LOADED[key]


def search(index: Any, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` most similar rows of the index: (similarities, row ids; -1 where
    the index holds fewer)."""
    return index.search(unit_rows(x), k)
