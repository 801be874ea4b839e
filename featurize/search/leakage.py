"""How much of a test split its training split already holds: each test image's most
similar training image, by the cosine of their PCA features, searched on the executors
in an index of the training images (:mod:`featurize.search.index`).

A test image with a training image at or above the duplicate threshold is the same shot
twice (or nearly): its label is known from the training split, and accuracy on it says
little about new photos.
"""
from __future__ import annotations

import tempfile
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.search import index as ix
from featurize.search import neighbours as nb

DEFAULT_THRESHOLD = ix.DUPLICATE_THRESHOLD
#: Pairs at or above the threshold listed in the report, most similar first.
EXAMPLES = 10


def leakage(spark: SparkSession, train: DataFrame, test: DataFrame,
            threshold: float = DEFAULT_THRESHOLD,
            exact_max: int = ix.EXACT_MAX) -> dict[str, Any]:
    """``{threshold, test_images, leaked, share, median_nearest, examples}``: how many
    test images have a training image at cosine >= ``threshold``, the median of each test
    image's best cosine, and the most similar such pairs (test path, train path)."""
    reference = nb.numbered(spark, train)
    queries = nb.numbered(spark, test)
    try:
        n = reference.count()
        with tempfile.TemporaryDirectory(prefix="featurize-leakage-") as tmp:
            record, _, shipped = nb.build_and_ship(spark, reference, n, exact_max, tmp)
            found = nb.neighbour_rows(queries, shipped, 1, record["nprobe"],
                                      exclude_self=False)
            best = (found.select("row", F.element_at("nbr", 1).alias("nbr"),
                                 F.element_at("sim", 1).alias("similarity"))
                    .join(queries.select("row", "path"), "row")
                    .join(reference.select(F.col("row").alias("nbr"),
                                           F.col("path").alias("train_path")), "nbr")
                    .persist())
            stats = best.agg(F.count("*").alias("n"),
                             F.sum((F.col("similarity") >= threshold).cast("long")).alias("leaked"),
                             F.percentile_approx("similarity", 0.5).alias("median")).first()
            examples = (best.where(F.col("similarity") >= threshold)
                        .orderBy(F.col("similarity").desc(), "path").limit(EXAMPLES)
                        .select("path", "train_path", "similarity").collect())
            best.unpersist()
    finally:
        reference.unpersist()
        queries.unpersist()
    leaked = int(stats["leaked"] or 0)
    return {"threshold": threshold, "test_images": int(stats["n"]), "leaked": leaked,
            "share": leaked / stats["n"] if stats["n"] else 0.0,
            "median_nearest": float(stats["median"]) if stats["median"] is not None else None,
            "examples": [{"test": r["path"], "train": r["train_path"],
                          "similarity": float(r["similarity"])} for r in examples]}
