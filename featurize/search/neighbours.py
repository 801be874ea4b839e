"""The Spark side of the index: the run's rows numbered, streamed to the driver in
Arrow chunks to build the index, and every image's neighbours found on the executors.

The rows are numbered in path order once (:func:`numbered`); the index's row ``i`` is
that row, and ``RUN/index/rows/`` keeps the mapping. The neighbour search runs where the
rows are: each Python worker memory-maps the index file Spark shipped to its node
(``SparkContext.addFile``) once, searches its partition's vectors, and the neighbours'
row numbers are turned into paths by a join, so no worker holds the path list.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.search import index as ix

#: Rows per chunk streamed to the driver (1,280 float32 at most: ~20 MB a chunk).
CHUNK_ROWS = 4096
NUMBERED_DDL = "row long, path string, label string, pca_features array<float>"
NEIGHBOURS_DDL = "row long, nbr array<long>, sim array<float>"


def numbered(spark: SparkSession, pca: DataFrame) -> DataFrame:
    """``path, label, pca_features`` with a ``row`` number from 0, in path order;
    persisted (the caller unpersists): it is read three times (sample, stream, search)."""
    ordered = pca.select("path", "label", "pca_features").orderBy("path")
    rows = ordered.rdd.zipWithIndex().map(
        lambda t: (t[1], t[0]["path"], t[0]["label"], t[0]["pca_features"]))
    return spark.createDataFrame(rows, NUMBERED_DDL).persist(StorageLevel.MEMORY_AND_DISK)


def build_and_ship(spark: SparkSession, frame: DataFrame, n: int, exact_max: int,
                   tmp: str) -> tuple[dict[str, Any], str, str]:
    """The index of the ``n`` numbered rows, built on the driver from the stream, written
    to ``tmp`` and handed to Spark for its workers: (its record, the local file, the name
    the workers open it by). The name is the file's content hash: a session never
    replaces a shipped file under one name (Spark refuses that)."""
    want = ix.RECALL_QUERIES
    if ix.kind_for(n, exact_max) != "flat":
        want = max(want, ix.cells_for(n) * ix.TRAIN_PER_CELL)
    sample = sample_vectors(frame, n, want)
    builder = ix.IndexBuilder(n, sample.shape[1], sample, exact_max)
    for chunk in stream_vectors(frame):
        builder.add(chunk)
    record = builder.finish()
    local = os.path.join(tmp, ix.INDEX_FILE)
    ix.save(builder.index, local)
    digest = hashlib.sha256()
    with open(local, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    shipped = os.path.join(tmp, f"index-{digest.hexdigest()[:16]}.faiss")
    os.link(local, shipped)
    spark.sparkContext.addFile(shipped)
    return record, local, os.path.basename(shipped)


def _chunks(batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` body: ``row, pca_features`` → one row per chunk of vectors, as
    (first row, count, dimension, float32 bytes)."""
    import pyarrow as pa

    for batch in batches:
        for start in range(0, batch.num_rows, CHUNK_ROWS):
            part = batch.slice(start, CHUNK_ROWS)
            n = part.num_rows
            if not n:
                continue
            flat = part.column(1).flatten().to_numpy(zero_copy_only=False)
            dim = len(flat) // n
            yield pa.RecordBatch.from_pydict({
                "first": [int(part.column(0)[0].as_py())], "n": [n], "dim": [dim],
                "x": [flat.astype(np.float32).tobytes()]})


def stream_vectors(frame: DataFrame) -> Iterator[np.ndarray]:
    """The numbered vectors in row order, ``CHUNK_ROWS`` at a time, one partition at a
    time on the driver (``toLocalIterator``: the driver holds one partition's chunks)."""
    expected = 0
    chunks = frame.select("row", "pca_features").mapInArrow(
        _chunks, "first long, n long, dim long, x binary")
    for r in chunks.toLocalIterator():
        if r["first"] != expected:
            raise RuntimeError(f"rows out of order: chunk at {r['first']}, expected {expected}")
        expected += r["n"]
        yield np.frombuffer(r["x"], dtype=np.float32).reshape(r["n"], r["dim"])


def sample_vectors(frame: DataFrame, n: int, want: int, seed: int = 0) -> np.ndarray:
    """About ``want`` of the ``n`` vectors, drawn at random (Bernoulli, a little over, cut)."""
    fraction = min(1.0, 1.2 * want / max(n, 1))
    rows = (frame.sample(fraction=fraction, seed=seed).select("pca_features")
            .limit(want).collect())
    return np.array([r[0] for r in rows], dtype=np.float32).reshape(len(rows), -1)


def _searcher(file_name: str, k: int, nprobe: int | None, exclude_self: bool = True):
    def search(batches: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd
        from pyspark import SparkFiles

        index = ix.load(SparkFiles.get(file_name), nprobe)
        for pdf in batches:
            if pdf.empty:
                continue
            rows = pdf["row"].to_numpy()
            x = np.stack(pdf["pca_features"].to_numpy()).astype(np.float32)
            sims, ids = ix.search(index, x, k + 1 if exclude_self else k)
            nbr, sim = [], []
            for own, s, i in zip(rows, sims, ids):
                keep = ((i != own) if exclude_self else True) & (i >= 0)
                nbr.append(i[keep][:k])
                sim.append(s[keep][:k])
            yield pd.DataFrame({"row": rows, "nbr": nbr, "sim": sim})
    return search


def neighbour_rows(frame: DataFrame, file_name: str, k: int, nprobe: int | None,
                   exclude_self: bool = True) -> DataFrame:
    """``row, nbr[k], sim[k]``: each row's ``k`` most similar rows of the shipped index
    (other than itself when the frame is the index's own rows), most similar first,
    searched on the executors."""
    return frame.select("row", "pca_features").mapInPandas(
        _searcher(file_name, k, nprobe, exclude_self), NEIGHBOURS_DDL)


def pairs(found: DataFrame) -> DataFrame:
    """``row, pos, nbr, sim``: one row per (image, neighbour)."""
    return (found.select("row", F.posexplode(F.arrays_zip("nbr", "sim")).alias("pos", "n"))
            .select("row", "pos", F.col("n.nbr").alias("nbr"), F.col("n.sim").alias("sim")))


def neighbour_table(found: DataFrame, rows: DataFrame) -> DataFrame:
    """``path, neighbours[{path, similarity}]`` (most similar first) from
    :func:`neighbour_rows` and the ``row, path`` mapping."""
    named = (pairs(found)
             .join(rows.select(F.col("row").alias("nbr"), F.col("path").alias("nbr_path")),
                   "nbr")
             .groupBy("row")
             .agg(F.array_sort(F.collect_list(F.struct(
                 "pos", F.col("nbr_path").alias("path"), F.col("sim").alias("similarity"))))
                 .alias("ranked")))
    return (rows.select("row", "path").join(named, "row", "left")
            .select("path", F.coalesce(
                F.transform("ranked", lambda s: F.struct(s["path"].alias("path"),
                                                         s["similarity"].alias("similarity"))),
                F.array().cast("array<struct<path:string,similarity:float>>"))
                .alias("neighbours")))
