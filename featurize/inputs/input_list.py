"""``--input-list``: the inputs named by a file the user gives, instead of a listing.

The list is read by Spark as a DataFrame of ``path`` (and an optional ``label``): a CSV
with a header, a Parquet file or folder, a plain text file (one path a line), or an S3
Inventory ``manifest.json`` (:mod:`featurize.inputs.inventory`). Nothing walks ``--input``: it
is the root that labels are taken below and that every listed path must be under. Each
file's size and time are read on the executors, and its bytes fetched there (local
files with ``open``, S3 objects with boto3), so the driver holds no per-file state
whatever the list's length. A listed file that does not exist becomes a ``not_read``
row of ``errors/``.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.config import FeaturizeConfig
from featurize.errors import ConfigError
from featurize.inputs.listing import (
    LISTING_JOB_GROUP, Listing, extension_column, is_image_column, why_too_large,
)
from featurize.rundir import local_path
from featurize.sparkconf import job_group
from featurize.storage import filesystem, s3
from featurize.storage.filesystem import fetched_locally

#: Schemes whose files the executors can stat and read without a Hadoop filesystem.
LIST_SCHEMES = ("file", "s3", "s3a", "s3n")

#: Paths a list-reading task stats or fetches; small enough to spread a list over
#: every core, large enough that a task's fixed cost does not count.
PATHS_PER_TASK = 5_000


def list_root(spark: SparkSession, input_uri: str) -> str:
    """``--input`` in the ``path`` column's form (``file:/abs/dir``, ``s3://b/prefix``),
    without touching the filesystem beyond qualifying a local path.

    Raises
    ------
    ConfigError
        A scheme the executors cannot read without Hadoop (``hdfs://`` …).
    """
    scheme = urlsplit(input_uri).scheme
    if s3.is_s3(input_uri):
        return s3.S3Uri.parse(input_uri).root
    if scheme not in ("", "file"):
        raise ConfigError(
            f"--input {input_uri}: with --input-list the files are read on the executors "
            f"with Python, which reads local paths and s3:// only; list the folder instead "
            f"(drop --input-list).")
    return filesystem.qualify(spark, input_uri).rstrip("/")


def normalised_path(path: Column, root: str) -> Column:
    """A listed path in the ``path`` column's form: ``file:///x`` → ``file:/x``; an
    absolute local path gets ``file:`` when the root is local; a relative one is taken
    under the root."""
    p = F.trim(path)
    with_scheme = p.rlike(r"^[A-Za-z][A-Za-z0-9+.-]*:")
    local_root = root.startswith("file:")
    return (F.when(with_scheme, F.regexp_replace(p, r"^file:///", "file:/"))
            .when(p.startswith("/"), F.concat(F.lit("file:"), p) if local_root else p)
            .otherwise(F.concat(F.lit(root.rstrip("/") + "/"), p)))


def read_list(spark: SparkSession, uri: str) -> DataFrame:
    """The list as ``path`` (and ``label`` when it has one), raw.

    Raises
    ------
    ConfigError
        The file has no ``path`` column (CSV, Parquet), or cannot be read.
    """
    from featurize.inputs import inventory

    name = uri.rstrip("/").rsplit("/", 1)[-1].lower()
    readable = fetched_locally(spark, uri)
    if name == "manifest.json":
        return inventory.read_inventory(spark, uri)
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        frame = spark.read.option("header", "true").csv(readable)
    elif name.endswith(".parquet") or filesystem.is_directory(spark, readable):
        frame = spark.read.parquet(readable)
    else:  # plain text: one path a line, blank lines and # comments skipped
        lines = spark.read.text(readable).select(F.trim("value").alias("path"))
        return lines.where((F.col("path") != "") & ~F.col("path").startswith("#"))
    if "path" not in frame.columns:
        raise ConfigError(
            f"--input-list {uri}: no 'path' column (it has {', '.join(frame.columns)}); a "
            f"CSV needs a header line 'path' (and optionally 'label').")
    cols = [F.col("path").cast("string").alias("path")]
    if "label" in frame.columns:
        cols.append(F.col("label").cast("string").alias("label"))
    return frame.select(*cols)


def _stat_one(path: str, client: Any) -> tuple[int | None, int | None]:
    if s3.is_s3(path):
        from botocore.exceptions import ClientError

        loc = s3.S3Uri.parse(path)
        try:
            head = client.head_object(Bucket=loc.bucket, Key=loc.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None, None
            raise
        return int(head["ContentLength"]), int(head["LastModified"].timestamp() * 1000)
    try:
        st = os.stat(local_path(path))
    except FileNotFoundError:
        return None, None
    if not os.path.isfile(local_path(path)):
        return None, None
    return int(st.st_size), int(st.st_mtime * 1000)


def stat_paths(paths: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
    """Scalar-iterator pandas UDF body: paths → ``length, mtime_ms`` (null: missing).

    One S3 client per task, made on the executor. Local times are truncated to the
    millisecond as Hadoop's file status gives them.
    """
    client = None
    for batch in paths:
        if client is None and any(s3.is_s3(p) for p in batch):
            client = s3.client()
        stats = [_stat_one(p, client) for p in batch]
        yield pd.DataFrame({"length": [s[0] for s in stats], "mtime_ms": [s[1] for s in stats]})


def stat_frame(listed: DataFrame, n_paths: int) -> DataFrame:
    """``listed`` (``path`` [, ``label``]) with ``length, mtime_ms`` read on the
    executors, over about ``n_paths / PATHS_PER_TASK`` tasks."""
    from pyspark.sql.functions import pandas_udf

    stat = pandas_udf("length long, mtime_ms long")(stat_paths)  # type: ignore[call-overload]
    tasks = max(1, -(-n_paths // PATHS_PER_TASK))
    return listed.repartition(tasks).withColumn("_stat", stat("path")).select(
        *listed.columns, F.col("_stat.length").alias("length"),
        F.col("_stat.mtime_ms").alias("mtime_ms"))


def list_given(spark: SparkSession, config: FeaturizeConfig) -> Listing:
    """``--input-list``: the list read by Spark, checked against the root, each file's
    size and time read on the executors; one aggregation counts it all."""
    assert config.input_list is not None
    root = list_root(spark, config.input)
    limit = config.file_byte_limit
    with job_group(spark, LISTING_JOB_GROUP, "featurize: read --input-list"):
        raw = read_list(spark, config.input_list)
        labels_given = "label" in raw.columns
        extra = [F.when(F.col("label") != "", F.col("label")).alias("label")] \
            if labels_given else []
        listed = raw.select(normalised_path(F.col("path"), root).alias("path"),
                            *extra).dropDuplicates(["path"])
        outside = listed.where(~F.col("path").startswith(root + "/"))
        first = [r["path"] for r in outside.limit(3).collect()]
        if first:
            raise ConfigError(
                f"--input-list {config.input_list}: {outside.count()} listed path(s) are not "
                f"under --input {root} (first: {', '.join(first)}); labels are taken below "
                f"--input, so give the folder that holds them all, or fix the list.")
        n_listed = listed.count()
        meta = stat_frame(listed.withColumn(
            "image", is_image_column(F.col("path"), config.extensions)), n_listed).persist(
            StorageLevel.MEMORY_AND_DISK)
        rows = meta.groupBy(
            "image", F.col("length").isNotNull().alias("exists"),
            F.when(F.col("image"), F.lit("")).otherwise(
                extension_column(F.col("path"))).alias("ext"),
        ).agg(F.count(F.lit(1)).alias("n"), F.sum("length").alias("bytes"),
              F.count_if(F.col("length") > F.lit(limit)).alias("big"),
              F.sum(F.when(F.col("length") > F.lit(limit), F.col("length"))).alias(
                  "big_bytes")).collect()
    found = [r for r in rows if r["image"] and r["exists"]]
    n_missing = sum(int(r["n"]) for r in rows if r["image"] and not r["exists"])
    skipped: dict[str, int] = {}
    for r in rows:
        if not r["image"]:
            skipped[r["ext"]] = skipped.get(r["ext"], 0) + int(r["n"])
    n_found = sum(int(r["n"]) for r in found)
    if n_missing and not n_found:
        raise ConfigError(
            f"--input-list {config.input_list}: none of its {n_missing} image path(s) "
            f"exists (under {root}); check --input and the list.")
    keep = ["path", "length", "mtime_ms"] + (["label"] if labels_given else [])
    n_bytes = sum(int(r["bytes"] or 0) for r in found)
    n_big = sum(int(r["big"]) for r in found)
    return Listing(
        uri=config.input, root=root, mode="list", extensions=config.extensions,
        images=meta.where(F.col("image") & F.col("length").isNotNull()).select(*keep),
        n_inputs=n_found + n_missing, n_bytes=n_bytes, n_too_large=n_big, byte_limit=limit,
        too_large_why=why_too_large(config), scan_files=n_found - n_big,
        scan_bytes=n_bytes - sum(int(r["big_bytes"] or 0) for r in found), skipped=skipped,
        missing=meta.where(F.col("image") & F.col("length").isNull()).select(
            *[c for c in keep if c in ("path", "label")]),
        n_missing=n_missing, labels_given=labels_given)
