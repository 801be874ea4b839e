"""The features' moments (count, mean, centred scatter) in one pass on the executors:
each partition's, merged exactly in a tree so that at most a few 13 MB partials reach the
driver, whatever the cluster's parallelism. :mod:`featurize.reduce.pca` fits from them.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame

from featurize.config import FEATURE_DIM


@dataclass
class MomentStats:
    """Count, mean and centred scatter matrix of feature vectors (float64).

    Partial results from partitions merge exactly (Chan et al.'s pairwise update), so the
    covariance needs one pass and no ``sum(x^2) - n*mean^2`` cancellation.
    """

    n: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> "MomentStats":
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        centred = x - mean
        return cls(len(x), mean, centred.T @ centred)

    def merge(self, other: "MomentStats") -> "MomentStats":
        if self.n == 0:
            return other
        if other.n == 0:
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.n * other.n / n)
        return MomentStats(n, mean, m2)

    def covariance(self) -> np.ndarray:
        """Unbiased covariance (n - 1), as Spark's StandardScaler and PCA use."""
        return self.m2 / max(self.n - 1, 1)


def _partition_stats(batches: Iterator[Any]) -> Iterator[Any]:
    """``mapInArrow`` body: one row of serialised :class:`MomentStats` per partition."""
    import pyarrow as pa

    acc: MomentStats | None = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        flat = batch.column(0).flatten().to_numpy(zero_copy_only=False)
        part = MomentStats.of(flat.reshape(batch.num_rows, -1))
        acc = part if acc is None else acc.merge(part)
    if acc is not None:
        yield pa.RecordBatch.from_pydict({
            "n": [acc.n], "dim": [len(acc.mean)],
            "mean": [acc.mean.tobytes()], "m2": [acc.m2.tobytes()],
        })


#: At most this many partial moments reach the driver, whatever the partition count:
#: each is a 1280 x 1280 float64 matrix (13 MB), and a cluster's read of features/ has
#: hundreds of partitions (the driver's heap on EMR is 1 GiB).
MAX_PARTIALS_TO_DRIVER = 4


#: Partial moments merged into one per task at each level of the tree on the executors.
TREE_FAN_IN = 8


def _decode_partial(row: Any) -> MomentStats:
    dim = int(row["dim"])
    return MomentStats(int(row["n"]), np.frombuffer(row["mean"], dtype=np.float64).copy(),
                       np.frombuffer(row["m2"], dtype=np.float64).reshape(dim, dim).copy())


def merge_tree(partials: Any) -> Any:
    """An RDD of :class:`MomentStats` merged on the executors into at most
    ``MAX_PARTIALS_TO_DRIVER`` partitions of one partial each.

    Each level is a shuffle in which ``TREE_FAN_IN`` partials become one per task, as
    ``RDD.treeReduce`` does, with the bound on what reaches the driver made explicit.
    """
    level = partials.getNumPartitions()
    while level > MAX_PARTIALS_TO_DRIVER:
        level = math.ceil(level / TREE_FAN_IN)
        # partition i feeds merge task i mod level: one key, so one partial, per task
        partials = (partials.mapPartitionsWithIndex(
            lambda i, parts, m=level: ((i % m, s) for s in parts))
            .reduceByKey(MomentStats.merge, level).values())
    return partials


def moment_stats(features: DataFrame) -> MomentStats:
    """Mean and scatter of the ``features`` column: one pass, merged on the executors
    (:func:`merge_tree`).

    A plain ``collect()`` of one 13 MB matrix per partition killed a 1 GiB driver at
    400 partitions, after the whole CNN pass.
    """
    partials = features.select("features").mapInArrow(
        _partition_stats, "n long, dim long, mean binary, m2 binary"
    ).rdd.map(_decode_partial)
    total = MomentStats(0, np.zeros(FEATURE_DIM), np.zeros((FEATURE_DIM, FEATURE_DIM)))
    for part in merge_tree(partials).collect():
        total = total.merge(part)
    return total
