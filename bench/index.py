"""``make bench-index``: the similar-images index at scale, on synthetic features.

1. ``--vectors N[,N...]``: N clustered vectors (``--dim``, 300 like a run's PCA at 0.95
   of the variance), the index the job would build (:class:`IndexBuilder`, streamed in
   chunks), its recall@10 against exact search on 1,000 of them, and the time of one
   photo's query, single queries one after another, against the exact (flat) index of
   the same vectors in the same run: the baseline.
2. ``--run-rows N``: the index job end to end (``featurize.search.job.run`` on local
   Spark) on a synthetic finished run of N rows: the neighbour table's time.

Last line: ``ratio flat/index per query at N=...``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from featurize.search import index as ix


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``n`` vectors around ~√n/2 centres: near neighbours exist, as in photo features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(10, int(np.sqrt(n) / 2)), dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        out[start:start + m] = (centres[rng.integers(0, len(centres), m)]
                                + rng.normal(size=(m, dim)).astype(np.float32))
    return out


def one_by_one(index, x: np.ndarray, queries: int = 200) -> float:
    """Median ms of one query (one photo) at a time."""
    times = []
    for q in x[:queries]:
        started = time.perf_counter()
        ix.search(index, q[None, :], ix.RECALL_AT + 1)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def bench_vectors(n: int, dim: int) -> dict:
    import faiss

    x = clustered(n, dim)
    rng = np.random.default_rng(1)
    want = max(ix.RECALL_QUERIES, ix.cells_for(n) * ix.TRAIN_PER_CELL)
    builder = ix.IndexBuilder(n, dim, x[rng.choice(n, min(n, want), replace=False)],
                              exact_max=0)
    for start in range(0, n, 4096):
        builder.add(x[start:start + 4096])
    record = builder.finish()
    flat = faiss.IndexFlatIP(dim)
    flat.add(ix.unit_rows(x))
    probe = x[rng.choice(n, 200, replace=False)]
    record["query_ms_one_by_one"] = one_by_one(builder.index, probe)
    record["flat_query_ms_one_by_one"] = one_by_one(flat, probe)
    record["index_mb"] = round(faiss.serialize_index(builder.index).nbytes / 1e6, 1)
    return record


def bench_run(n: int, dim: int) -> dict:
    from pyspark.sql import SparkSession

    from featurize.search import job

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers: this venv
    spark = SparkSession.builder.appName("bench-index").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        run = Path(tmp) / "run"
        x = clustered(n, dim)
        import pyarrow as pa
        import pyarrow.parquet as pq

        (run / "pca").mkdir(parents=True)
        for part, start in enumerate(range(0, n, 25_000)):  # a few files, as a run has
            block = x[start:start + 25_000]
            idx = range(start, start + len(block))
            pq.write_table(pa.table({
                "path": [f"file:/photos/c{i % 50}/{i:08d}.jpg" for i in idx],
                "label": [f"c{i % 50}" for i in idx],
                "pca_features": pa.FixedSizeListArray.from_arrays(
                    pa.array(block.ravel()), dim).cast(pa.list_(pa.float32()))}),
                run / "pca" / f"part-{part:05d}.parquet")
        (run / "manifest.json").write_text(json.dumps({"status": "complete"}))
        started = time.perf_counter()
        summary = job.run(spark, job.IndexConfig(run=str(run), k=10, duplicates=0.95))
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    spark.stop()
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vectors", default="100000,1000000")
    p.add_argument("--run-rows", type=int, default=0)
    p.add_argument("--dim", type=int, default=300)
    args = p.parse_args()
    last = None
    for n in [int(v) for v in args.vectors.split(",") if v]:
        r = bench_vectors(n, args.dim)
        print(json.dumps({"vectors": n, **r}))
        last = (n, r)
    if args.run_rows:
        s = bench_run(args.run_rows, args.dim)
        print(json.dumps({"run_rows": args.run_rows, "index": s["index"],
                          "duplicates": s["duplicates"], "timings": s["timings_seconds"],
                          "wall_seconds": s["wall_seconds"]}))
    if last:
        n, r = last
        print(f"ratio flat/index per query at N={n}: "
              f"{r['flat_query_ms_one_by_one'] / r['query_ms_one_by_one']:.1f} "
              f"({r['flat_query_ms_one_by_one']:.3f} ms / {r['query_ms_one_by_one']:.3f} ms, "
              f"recall@10 {r['recall_at_10']:.3f})")


if __name__ == "__main__":
    main()
