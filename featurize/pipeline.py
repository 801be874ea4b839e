"""Spark transforms of the featurize job: read, label, featurize, split.

Readers take a SparkSession and a URI and return a DataFrame; transforms take and
return DataFrames and never touch storage, so they can be tested on in-memory data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F


def extension_glob(extensions: tuple[str, ...]) -> str:
    """A case-insensitive Hadoop glob for file names, e.g. ``*.{[jJ][pP][gG],...}``.

    Examples
    --------
    >>> extension_glob(("jpg", "png"))
    '*.{[jJ][pP][gG],[pP][nN][gG]}'
    """

    def one(ext: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in ext)

    return "*.{" + ",".join(one(e) for e in extensions) + "}"


def read_images(spark: SparkSession, input_uri: str, extensions: tuple[str, ...]) -> DataFrame:
    """Lazily read images under ``input_uri`` (recursively) with ``binaryFile``.

    Returns ``path, modificationTime, length, content``; ``content`` is only read
    from storage when a later action needs it.
    """
    return (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", extension_glob(extensions))
        .load(input_uri)
    )


def spark_path(uri: str) -> str:
    """The ``path`` column form of a URI from ``DataFrame.inputFiles()``.

    ``inputFiles()`` gives escaped URIs (``file:///a%20b.jpg``); the ``binaryFile``
    ``path`` column gives Hadoop's ``Path.toString()`` (``file:/a b.jpg``).

    Examples
    --------
    >>> spark_path("file:///data/a%204.jpg")
    'file:/data/a 4.jpg'
    >>> spark_path("s3://bucket/x/%C3%BC.png")
    's3://bucket/x/ü.png'
    """
    parts = urlsplit(uri)
    authority = f"//{parts.netloc}" if parts.netloc else ""
    return f"{parts.scheme}:{authority}{unquote(parts.path)}"


def listed_paths(images: DataFrame) -> set[str]:
    """Every file the reader's file index listed, in ``path`` column form.

    Includes 0-byte files, which the ``binaryFile`` scan silently skips (Spark drops
    empty files when it plans file splits); comparing this set with the scanned rows is
    how they get into ``errors/`` instead of disappearing. Listing is driver-side
    metadata: no Spark job, no content read.
    """
    return {spark_path(u) for u in images.inputFiles()}


def listed_bytes(images: DataFrame) -> int:
    """Total bytes of the listed files, from the reader's file index (no Spark job).

    Falls back to an aggregation over the ``length`` column (metadata only) if the
    index cannot be reached through this Spark's internals.
    """
    from py4j.protocol import Py4JError

    try:
        location = images._jdf.queryExecution().analyzed().relation().location()
        return int(location.sizeInBytes())
    except Py4JError:
        row = images.agg(F.sum("length").alias("bytes")).first()
        return int(row["bytes"] or 0)


def label_column(path: Column, root: str) -> Column:
    """Name of the immediate parent folder of ``path``; null directly under ``root``.

    ``root`` must be qualified the way Spark reports paths (see
    :func:`featurize.storage.qualify`), e.g. ``file:/data/images``.
    """
    parent = F.regexp_extract(path, r"^(.*)/[^/]*$", 1)
    return F.when(parent == F.lit(root.rstrip("/")), F.lit(None).cast("string")).otherwise(
        F.regexp_extract(parent, r"([^/]*)$", 1)
    )


def with_labels(images: DataFrame, root: str) -> DataFrame:
    """``binaryFile`` rows → ``path, label, length, modification_time, content``."""
    return images.select(
        F.col("path"),
        label_column(F.col("path"), root).alias("label"),
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
