"""Listing a prefix: one walk of ``--input`` (Spark's file index, on the driver), counted
by one aggregation of its metadata on the executors. No path crosses into Python; the
0-byte files that Spark's scan never returns are found in the JVM, and only when the
index and the scan disagree.
"""
from __future__ import annotations

from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.config import FeaturizeConfig
from featurize.inputs import listing
from featurize.rundir import ErrorRecord, label_of
from featurize.sparkconf import job_group, sql_conf
from featurize.storage import filesystem, s3

#: Files per task of the metadata scan (no content read): each task carries its file list,
#: ~150 bytes a file, so this keeps a task under Spark's 1 MB warning size.
LISTING_FILES_PER_TASK = 5_000

def uri_to_path(uri: str) -> Column:
    """``DataFrame.inputFiles()`` URIs (``file:///a%20b.jpg``) in the ``path`` column's form
    (``file:/a b.jpg``), in the JVM: the SQL twin of percent-decoding the URI's path.

    ``+`` is protected first: URLDecoder reads it as a space, a URI path does not.
    """
    decoded = F.expr(f"reflect('java.net.URLDecoder', 'decode', replace(`{uri}`, '+', "
                     f"'%2B'), 'UTF-8')")
    return F.regexp_replace(decoded, r"^([A-Za-z][A-Za-z0-9+.-]*):///", "$1:/")


def _listing_conf() -> dict[str, str]:
    """The metadata scan's split: about :data:`LISTING_FILES_PER_TASK` files a task
    whatever their sizes (each file counts as a 1 GiB open cost, far above any file's
    bytes), at least one task a core; a file gone since the walk is skipped."""
    gib = 1024 ** 3
    return {"spark.sql.files.openCostInBytes": str(gib),
            "spark.sql.files.maxPartitionBytes": str(LISTING_FILES_PER_TASK * gib),
            "spark.sql.files.ignoreMissingFiles": "true"}


def list_prefix(spark: SparkSession, config: FeaturizeConfig) -> listing.Listing:
    """The walk of ``--input`` (Spark's file index) and one aggregation of its metadata on
    the executors: the spark-mode :class:`featurize.inputs.listing.Listing`."""
    root = filesystem.qualify(spark, config.input)
    walked = listing.binary_files(spark, config.input, None)  # the walk: Spark's file index
    limit = config.file_byte_limit
    with sql_conf(spark, _listing_conf()), job_group(
            spark, listing.LISTING_JOB_GROUP, "featurize: list inputs (metadata only)"):
        meta = walked.select(
            "path", "length", F.expr("unix_millis(modificationTime)").alias("mtime_ms"),
            listing.is_image_column(F.col("path"), config.extensions).alias("image"),
        ).persist(StorageLevel.MEMORY_AND_DISK)
        # one job: per extension, how many files and bytes (and over the limit, for images)
        rows = meta.groupBy(
            "image", F.when(F.col("image"), F.lit("")).otherwise(
                listing.extension_column(F.col("path"))).alias("ext"),
        ).agg(F.count(F.lit(1)).alias("n"), F.sum("length").alias("bytes"),
              F.count_if(F.col("length") > F.lit(limit)).alias("big"),
              F.sum(F.when(F.col("length") > F.lit(limit), F.col("length"))).alias(
                  "big_bytes")).collect()
    n_images = sum(int(r["n"]) for r in rows if r["image"])
    skipped = {r["ext"]: int(r["n"]) for r in rows if not r["image"]}
    n_scanned = n_images + sum(skipped.values())
    n_bytes = sum(int(r["bytes"] or 0) for r in rows if r["image"])
    n_big = sum(int(r["big"]) for r in rows if r["image"])
    images = meta.where("image").select("path", "length", "mtime_ms")
    empty: list[ErrorRecord] = []
    # The file index counts 0-byte files, the scan never returns them: name them only
    # when the two differ (one JVM array's length; no per-file call otherwise).
    all_files = walked._jdf.inputFiles()
    if len(all_files) != n_scanned:
        with job_group(spark, listing.LISTING_JOB_GROUP, "featurize: find 0-byte inputs"):
            missing = _unscanned(spark, all_files, meta)
        for path in missing:
            if not filesystem.exists(spark, path):
                continue  # gone since the walk: not an input
            length, mtime_ms = filesystem.stat(spark, path)
            name_is_image = path.lower().endswith(tuple("." + e for e in config.extensions))
            if not name_is_image:
                ext = s3.extension_of(path)
                skipped[ext] = skipped.get(ext, 0) + 1
            elif length == 0:
                empty.append(ErrorRecord(path, label_of(path, root), 0, mtime_ms, "empty",
                                         "file has 0 bytes"))
    return listing.Listing(
        uri=config.input, root=root, mode="spark", extensions=config.extensions,
        images=images, n_inputs=n_images + len(empty), n_bytes=n_bytes, n_too_large=n_big,
        byte_limit=limit, too_large_why=listing.why_too_large(config),
        scan_files=n_images - n_big,
        scan_bytes=n_bytes - sum(int(r["big_bytes"] or 0) for r in rows if r["image"]),
        skipped=skipped, walked=walked, empty=tuple(sorted(empty)),
        workers_read=workers_read(config.reader, root))


def workers_read(reader: str, root: str) -> bool:
    """Whether the Python workers read a walked prefix's bytes (``--reader``): ``auto``
    on the local file system (no copy through the JVM, no file list in a task), the
    ``binaryFile`` scan elsewhere (EMR's ``s3://`` through S3A, ``hdfs://``).

    >>> workers_read("auto", "file:/data/photos"), workers_read("auto", "s3://b/photos")
    (True, False)
    >>> workers_read("workers", "s3://b/photos"), workers_read("scan", "file:/data")
    (True, False)
    """
    return reader == "workers" or (reader == "auto" and root.startswith("file:"))


def _unscanned(spark: SparkSession, all_files: Any, meta: DataFrame) -> list[str]:
    """Paths the file index lists but the scan did not return (0-byte files, or gone
    since the walk), found in the JVM: the index's URI array becomes a Dataset there,
    and only the difference reaches Python."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    seq = jvm.scala.collection.mutable.WrappedArray.make(all_files)
    uris = DataFrame(spark._jsparkSession.createDataset(  # type: ignore[attr-defined]
        seq, jvm.org.apache.spark.sql.Encoders.STRING()).toDF(), spark)  # column "value"
    missing = uris.select(uri_to_path("value").alias("path")).join(
        meta.select("path"), "path", "left_anti")
    return sorted(r["path"] for r in missing.collect())
