"""Spark transforms of the featurize pass: label, featurize, split into features and
errors; and how the scan is cut into tasks.

Transforms take and return DataFrames and never touch storage, so they can be tested on
in-memory data (the readers are in :mod:`featurize.inputs.listing`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from featurize.inputs.listing import label_column


def with_labels(images: DataFrame, root: str, given: bool = False) -> DataFrame:
    """``binaryFile`` rows → ``path, label, length, modification_time, content``;
    ``given``: the rows have their own ``label`` (an ``--input-list`` column)."""
    return images.select(
        F.col("path"),
        (F.col("label") if given else label_column(F.col("path"), root)).alias("label"),
        F.col("length"),
        F.col("modificationTime").alias("modification_time"),
        F.col("content"),
    )


def apply_featurizer(labelled: DataFrame, featurizer: Column) -> DataFrame:
    """Run the UDF over ``content``; keep metadata and the result struct, drop bytes."""
    return labelled.select(
        "path", "label", "length", "modification_time", featurizer.alias("result")
    )


def features_rows(featurized: DataFrame) -> DataFrame:
    """Rows that decoded: the ``features/`` schema."""
    return featurized.where(F.col("result.error").isNull()).select(
        "path", "label", "length", "modification_time",
        F.col("result.features").alias("features"),
    )


def error_rows(featurized: DataFrame) -> DataFrame:
    """Rows that did not decode: the ``errors/`` schema."""
    return featurized.where(F.col("result.error").isNotNull()).select(
        "path", "label", "length", "modification_time",
        F.col("result.error").alias("error"), F.col("result.detail").alias("detail"),
    )


@dataclass(frozen=True)
class PartitionPlan:
    """How the ``binaryFile`` scan is cut into tasks."""

    partitions: int
    files_per_partition: int
    max_partition_bytes: int


def plan_partitions(
    n_files: int,
    total_bytes: int,
    parallelism: int,
    max_files_per_partition: int,
    open_cost_bytes: int = 4 * 1024 * 1024,
) -> PartitionPlan:
    """Choose ``spark.sql.files.maxPartitionBytes`` so tasks hold a planned file count.

    Spark packs files into a partition until the sum of ``length + openCostInBytes``
    passes ``maxPartitionBytes``; with small images the 4 MB open cost, not the bytes,
    decides the count (about 32 files a task by default: most of a 64-image batch would
    be padding). This plans a multiple of ``parallelism`` partitions of at most
    ``max_files_per_partition`` files each, so no core idles in the last wave.

    Examples
    --------
    >>> p = plan_partitions(500, 500 * 5000, parallelism=2, max_files_per_partition=1024)
    >>> p.partitions, p.files_per_partition
    (2, 250)
    """
    n = max(n_files, 1)
    parallelism = max(parallelism, 1)
    waves = math.ceil(n / (parallelism * max_files_per_partition))
    partitions = min(n, parallelism * waves)
    per = math.ceil(n / partitions)
    avg = total_bytes / n
    # Half an open cost of slack so rounding never spills one file into a new task.
    max_bytes = int(per * (avg + open_cost_bytes) + open_cost_bytes // 2)
    return PartitionPlan(partitions, per, max_bytes)
