"""Near-duplicate groups of any set of images (the training split, for cross-validation
folds that keep a group together): each image's nearest neighbours in an index of the
set itself, the pairs at or above a cosine, their connected components."""
from __future__ import annotations

import tempfile

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.search import duplicates as dup
from featurize.search import index as ix
from featurize.search import neighbours as nb

#: Neighbours looked at per image: a group is found whole when its members chain.
NEIGHBOURS = 10


def duplicate_roots(spark: SparkSession, frame: DataFrame, threshold: float,
                    k: int = NEIGHBOURS) -> DataFrame:
    """``path, root``: every image of ``frame`` (``path, label, pca_features``) that has a
    near-duplicate at cosine >= ``threshold``, and its group's first path (in path
    order). Images in no group are absent. Materialised before it returns."""
    numbered = nb.numbered(spark, frame)
    try:
        n = numbered.count()
        if n < 2:
            return spark.createDataFrame([], "path string, root string")
        with tempfile.TemporaryDirectory(prefix="featurize-groups-") as tmp:
            record, _, shipped = nb.build_and_ship(spark, numbered, n, ix.EXACT_MAX, tmp)
            found = nb.neighbour_rows(numbered, shipped, k, record["nprobe"])
            labels = dup.components(dup.edges(nb.pairs(found), threshold))
            rows = numbered.select("row", "path")
            return (labels.join(rows, "row")
                    .join(rows.select(F.col("row").alias("label"), F.col("path").alias("root")),
                          "label")
                    .select("path", "root").localCheckpoint())
    finally:
        numbered.unpersist()
