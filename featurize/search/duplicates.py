"""Near-duplicate groups: the connected components of the pairs of images at or above a
cosine similarity, among each image's ``k`` nearest.

Components are found on the executors by min-label propagation: every image starts with
its own row number, and each round takes the smallest label of its pairs until no label
changes (as many rounds as the longest chain of pairs, a handful for duplicates). A
group is numbered by size (largest first, then its first path); its first member is its
first row in path order, and each member's ``similarity`` is the cosine to it.
"""
from __future__ import annotations

import logging

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)

DUPLICATES_COLUMNS = ("group", "path", "similarity")
#: Rounds of label propagation at most (a chain of near-duplicates this long is a
#: threshold too low, not a group).
MAX_ROUNDS = 100


def edges(pairs: DataFrame, threshold: float) -> DataFrame:
    """Undirected ``a < b`` edges of the pairs at or above ``threshold``, once each."""
    return (pairs.where(F.col("sim") >= F.lit(threshold))
            .select(F.least("row", "nbr").alias("a"), F.greatest("row", "nbr").alias("b"))
            .where(F.col("a") != F.col("b")).distinct())


def components(edge: DataFrame) -> DataFrame:
    """``row, label``: each vertex of ``edge`` and the smallest row of its component."""
    both = edge.select("a", "b").union(edge.select(F.col("b").alias("a"), F.col("a").alias("b")))
    both = both.persist()
    labels = both.groupBy("a").agg(F.least(F.min("b"), F.first("a")).alias("label")) \
        .withColumnRenamed("a", "row").localCheckpoint()
    for rounds in range(1, MAX_ROUNDS + 1):
        pushed = (both.join(labels.withColumnRenamed("row", "b"), "b")
                  .groupBy(F.col("a").alias("row")).agg(F.min("label").alias("pushed")))
        new = (labels.join(pushed, "row", "left")
               .select("row", F.least("label", F.coalesce("pushed", "label")).alias("label"))
               .localCheckpoint())
        changed = new.join(labels.withColumnRenamed("label", "old"), "row") \
            .where(F.col("label") != F.col("old")).count()
        labels = new
        if not changed:
            logger.info("duplicates: components settled after %d round(s)", rounds)
            break
    else:
        logger.warning("duplicates: labels still changing after %d rounds", MAX_ROUNDS)
    both.unpersist()
    return labels


def groups(labels: DataFrame, frame: DataFrame) -> DataFrame:
    """``group, path, similarity`` from :func:`components` and the numbered rows."""
    members = labels.join(frame.select("row", "path", "pca_features"), "row")
    first = (members.where(F.col("row") == F.col("label"))
             .select("label", F.col("pca_features").alias("first")))
    sizes = members.groupBy("label").agg(F.count("*").alias("size"), F.min("path").alias("p0"))
    by_size = Window.orderBy(F.col("size").desc(), F.col("p0"))
    numbered = sizes.select("label", F.row_number().over(by_size).cast("int").alias("group"))
    x, y = F.col("pca_features").cast("array<double>"), F.col("first").cast("array<double>")
    dot = F.aggregate(F.zip_with(x, y, lambda a, b: a * b), F.lit(0.0), lambda s, v: s + v)
    nx = F.sqrt(F.aggregate(F.transform(x, lambda a: a * a), F.lit(0.0), lambda s, v: s + v))
    ny = F.sqrt(F.aggregate(F.transform(y, lambda a: a * a), F.lit(0.0), lambda s, v: s + v))
    cosine = F.when(nx * ny > 0, dot / (nx * ny)).otherwise(F.lit(0.0)).cast("float")
    return (members.join(first, "label").join(numbered, "label")
            .select("group", "path", cosine.alias("similarity"))
            .orderBy("group", "path"))
