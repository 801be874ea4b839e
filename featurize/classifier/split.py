"""Which images train and which test: the stratified split, the cross-validation folds,
and ``--split-file``; all as DataFrames.

Within each label, images are ordered by a seeded hash of the file name (not the whole
path: the same images split the same way wherever they are stored), and a label's first
``round(n * test_fraction)`` go to the test split. That order is computed by one global
sort, cut across every core, and a position within the label from the labels' counts;
no window per label, which would sort each label in a single task.
"""
from __future__ import annotations

import math

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.errors import ClassifierError
from featurize.storage.filesystem import fetched_locally

#: The fold column :func:`with_folds` adds.
FOLD = "_fold"
_RANK = "_rank"
_HASH = "_hash"
_ID = "_id"


def _lookup(values: dict[str, int], key: Column) -> Column:
    """``values[key]`` as a Spark column (a literal map: one entry a label)."""
    return F.create_map(*[F.lit(x) for kv in values.items() for x in kv])[key]


def label_counts(df: DataFrame) -> dict[str, int]:
    """Rows per label (one small aggregation)."""
    return {r["label"]: int(r["count"]) for r in df.groupBy("label").count().collect()}


def ranked(df: DataFrame, seed: int, counts: dict[str, int]) -> DataFrame:
    """``df`` with ``_rank``: the row's position (from 0) within its label in the seeded
    hash order of the file name, ties broken by path.

    One range-partitioned sort by (label, hash, path) spreads the work over every core;
    a row's global position is its partition's offset (from the rows per partition, one
    small aggregation) plus its place in the partition, and its label's offset (from
    ``counts``, labels in the sort's order) turns that into the position in the label.
    """
    name = F.element_at(F.split(F.col("path"), "/"), -1)
    keys = (df.select("path", "label", F.xxhash64(name, F.lit(seed)).alias(_HASH))
            .orderBy("label", _HASH, "path")
            .withColumn(_ID, F.monotonically_increasing_id())
            .withColumn("_part", F.spark_partition_id())
            .persist(StorageLevel.MEMORY_AND_DISK))  # one sort, read twice below
    per_part = {r["_part"]: (int(r["n"]), int(r["first"])) for r in keys.groupBy("_part").agg(
        F.count(F.lit(1)).alias("n"), F.min(_ID).alias("first")).collect()}
    start, part_offset = 0, {}
    for part in sorted(per_part):
        n, first = per_part[part]
        part_offset[part] = start - first  # global position = _id + this
        start += n
    label_offset, start = {}, 0
    for label in sorted(counts, key=lambda s: s.encode("utf-8")):  # Spark's string order
        label_offset[label] = start
        start += counts[label]
    position = F.col(_ID) + _lookup({str(k): v for k, v in part_offset.items()},
                                    F.col("_part").cast("string"))
    rank = keys.select("path", (position - _lookup(label_offset, F.col("label"))).alias(_RANK))
    return df.join(rank, "path")


def n_test(n: int, test_fraction: float) -> int:
    """Test images of a label of ``n``: ``round(n * test_fraction)`` half up, at least 1,
    at most ``n - 1``.

    >>> [n_test(n, 0.3) for n in (2, 3, 5, 10)]
    [1, 1, 2, 3]
    """
    return min(max(math.floor(n * test_fraction + 0.5), 1), n - 1)


def stratified_split(df: DataFrame, test_fraction: float, seed: int
                     ) -> tuple[DataFrame, DataFrame]:
    """Split per label, deterministically: every label lands in both halves, exactly
    :func:`n_test` of it in the test split.

    Raises
    ------
    ClassifierError
        If a label has fewer than 2 rows, or the fraction is not in (0, 1).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ClassifierError(f"--test-fraction {test_fraction} must be between 0 and 1.")
    counts = label_counts(df)
    small = sorted(str(label) for label, n in counts.items() if n < 2)
    if small:
        raise ClassifierError(
            "each label needs at least 2 images to appear in both splits; too few for: "
            + ", ".join(small))
    tests = {label: n_test(n, test_fraction) for label, n in counts.items()}
    rows = ranked(df, seed, counts)
    is_test = F.col(_RANK) < _lookup(tests, F.col("label"))
    cols = df.columns
    return rows.where(~is_test).select(*cols), rows.where(is_test).select(*cols)


def with_folds(df: DataFrame, folds: int, seed: int) -> DataFrame:
    """Add ``_fold`` in [0, folds), stratified: within each label, rows in the seeded hash
    order are dealt round-robin, each label starting where the previous one stopped.
    Every fold gets each label's share (± 1), and no fold is empty as long as there are
    ``folds`` rows, even when every label has fewer (labels a and b of 2 rows each,
    3 folds: a → 0, 1 and b → 2, 0).
    """
    counts = label_counts(df)
    offsets, start = {}, 0
    for label, n in sorted(counts.items()):
        offsets[label] = start % folds
        start += n
    rows = ranked(df, seed, counts)
    fold = ((F.col(_RANK) + _lookup(offsets, F.col("label"))) % folds).cast("int")
    return rows.withColumn(FOLD, fold).drop(_RANK)


SPLIT_FILE_SCHEMA = "side string, label string, file string"


def read_split_file(spark: SparkSession, uri: str) -> DataFrame:
    """``Training|Test,<label>,<file name>`` lines, read by Spark → ``_key_label,
    _key_file, _side`` (``train``/``test``); a first field ``split`` or ``#`` is a header
    or a comment.

    Raises
    ------
    ClassifierError
        A line that is not of that form (the first one is named).
    """
    lines = spark.read.csv(fetched_locally(spark, uri), schema=SPLIT_FILE_SCHEMA)
    lines = lines.where(F.col("side").isNull()
                        | ~F.lower(F.trim("side")).isin("split", "#"))
    bad = lines.where(~F.col("side").isin("Training", "Test") | F.col("label").isNull()
                      | F.col("file").isNull()).limit(1).collect()
    if bad:
        raise ClassifierError(f"{uri}: expected 'Training|Test,<label>,<file>' lines, got "
                              f"{[v for v in bad[0] if v is not None]!r}")
    return lines.select(F.col("label").alias("_key_label"), F.col("file").alias("_key_file"),
                        F.when(F.col("side") == "Training", F.lit("train"))
                        .otherwise(F.lit("test")).alias("_side"))


def split_by_file(df: DataFrame, split: DataFrame) -> tuple[DataFrame, DataFrame, int]:
    """Split by a split file (:func:`read_split_file`); returns (train, test, rows not
    named in it)."""
    named = df.withColumn("_file", F.element_at(F.split("path", "/"), -1)).join(
        split, (F.col("label") == F.col("_key_label")) & (F.col("_file") == F.col("_key_file")),
        "left")
    cols = df.columns
    missing = named.where(F.col("_side").isNull()).count()
    train = named.where(F.col("_side") == "train").select(*cols)
    test = named.where(F.col("_side") == "test").select(*cols)
    return train, test, missing
