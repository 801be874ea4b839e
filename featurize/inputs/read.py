"""The inputs' bytes, and the listing that chooses how they are found: a walk of the
prefix (:mod:`featurize.inputs.walk`), a given list (:mod:`featurize.inputs.input_list`), or
boto3 where this Spark has no S3 filesystem (listed on the driver).
:func:`read_contents` is the one reader the featurize pass uses, whichever way was
chosen, and it reads bytes one of two ways (``--reader``, carried in
:attr:`Listing.workers_read`): the Python workers open each file or fetch each object
themselves (:func:`read_by_path`: local files, S3 through boto3), or Spark's
``binaryFile`` scan reads them in the JVM and ships them to the workers (any Hadoop
filesystem: ``s3://`` through EMR's S3A, ``hdfs://``).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.config import FeaturizeConfig
from featurize.errors import ConfigError
from featurize.inputs.input_list import list_given
from featurize.inputs.listing import BROADCAST_ROWS, Listing, why_too_large
from featurize.inputs.walk import list_prefix
from featurize.rundir import ERROR_RECORD_DDL, FILE_KEY_DDL, ErrorRecord, label_of, local_path
from featurize.storage import filesystem, s3

logger = logging.getLogger(__name__)


def list_inputs(spark: SparkSession, config: FeaturizeConfig, mode: str, *,
                folder: bool = True) -> Listing:
    """List the inputs and check the configuration against them.

    ``mode`` ``spark``: one walk of the input (Spark's file index), then one aggregation
    of its metadata on the executors (no content read). ``boto3``: a paginated S3
    listing on the driver, for S3 where this Spark has no filesystem (the path for
    trying the job against S3 from a laptop, not for millions of objects).

    Raises
    ------
    ConfigError
        Not a folder (a missing path, or with ``folder`` a file), no matching files, or
        ``--pca-k`` larger than the number of inputs.
    """
    if config.input_list:
        listing = list_given(spark, config)
    elif mode == "boto3":
        if config.reader == "scan":
            raise ConfigError(
                f"--reader scan: this Spark has no filesystem for {config.input} (add "
                f"hadoop-aws to its classpath, as EMR has), so only the workers can read "
                f"it; leave --reader at auto.")
        listing = _list_boto3(spark, config)
    else:
        if not (filesystem.is_directory(spark, config.input) if folder
                else filesystem.exists(spark, config.input)):
            raise ConfigError(
                f"--input {config.input} is not a folder (or does not exist); give the "
                f"folder that holds the images (<label>/<file>.jpg).")
        listing = list_prefix(spark, config)
    _check_listing(config, listing)
    if listing.n_too_large:
        logger.warning("%d file(s) over the byte limit go to errors/ as too_large, unread",
                       listing.n_too_large)
    return listing


def _list_boto3(spark: SparkSession, config: FeaturizeConfig) -> Listing:
    client = s3.client()
    skipped: dict[str, int] = {}
    objects = s3.list_images(client, config.input, config.extensions, skipped)
    if not objects and not skipped and s3.prefix_is_empty(client, config.input):
        raise ConfigError(f"--input {config.input}: there are no objects under this "
                          f"prefix; check the bucket and prefix.")
    limit = config.file_byte_limit
    big = [o for o in objects if o[1] > limit]
    images = spark.createDataFrame(objects, FILE_KEY_DDL).persist(StorageLevel.MEMORY_AND_DISK)
    n_bytes = sum(o[1] for o in objects)
    return Listing(
        uri=config.input, root=s3.S3Uri.parse(config.input).root, mode="boto3",
        extensions=config.extensions, images=images, n_inputs=len(objects),
        n_bytes=n_bytes, n_too_large=len(big), byte_limit=limit,
        too_large_why=why_too_large(config), scan_files=len(objects) - len(big),
        scan_bytes=n_bytes - sum(o[1] for o in big), skipped=skipped)


def _check_listing(config: FeaturizeConfig, listing: Listing) -> None:
    skipped = listing.skipped
    others = ", ".join(f"{n} {e}" for e, n in sorted(skipped.items()))
    if skipped:
        logger.warning("not read because of their extension (add them with --extensions if "
                       "they are images Pillow can decode): %s", others)
    if not listing.n_inputs:
        exts = ", ".join("." + e for e in config.extensions)
        other = f"; it holds {sum(skipped.values())} other file(s): {others}" if skipped else ""
        raise ConfigError(
            f"--input {config.input} holds no files ending in {exts} (any letter case)"
            f"{other}.")
    if config.pca_k is not None and config.pca_k > listing.n_inputs:
        raise ConfigError(
            f"--pca-k {config.pca_k} is larger than the {listing.n_inputs} input images; "
            f"lower --pca-k or add images.")


def unscanned(spark: SparkSession, scanned: DataFrame, listing: Listing,
              n_scanned: int) -> list[ErrorRecord]:
    """Inputs meant to be read that the scan did not return (deleted or emptied during
    the run), as records.

    Only when the counts differ are the readable keys anti-joined with the persisted
    result on the executors, and the few missing files stat-ed on the driver.
    """
    if n_scanned == listing.n_to_read:
        return []
    missing = listing.readable().join(scanned.select("path"), "path", "left_anti")
    records = []
    for path in sorted(r["path"] for r in missing.collect()):
        if listing.mode == "boto3" or not filesystem.exists(spark, path):
            records.append(ErrorRecord(path, label_of(path, listing.root), 0, 0, "not_read",
                                       "listed, but gone when it was read (deleted during "
                                       "the run?)"))
            continue
        length, mtime_ms = filesystem.stat(spark, path)
        if length == 0:
            records.append(ErrorRecord(path, label_of(path, listing.root), 0, mtime_ms,
                                       "empty", "file has 0 bytes"))
        else:
            records.append(ErrorRecord(
                path, label_of(path, listing.root), length, mtime_ms, "not_read",
                "listed but not returned by the reader (changed during the run?)"))
    return records


def read_contents(spark: SparkSession, listing: Listing, config: FeaturizeConfig,
                  partitions: int) -> DataFrame:
    """The files to featurize with their bytes, in the ``binaryFile`` schema.

    Read by the workers: only the files to read (the listing's keys under the limit,
    less what a resume keeps), fetched on ``partitions`` tasks. Read by the scan: the
    reader, without too-large files (filtered on the file status, so their bytes are
    never read) and without the inputs a resume keeps (joined after the scan, with
    whichever side is small broadcast; binaryFile pushes down only length and time
    filters).
    """
    if listing.workers_read:
        return read_by_path(listing.readable(), partitions)
    images = listing.files(spark).where(F.col("length") <= F.lit(config.file_byte_limit))
    if listing.done is None or not listing.n_done:
        return images
    if listing.n_to_read <= BROADCAST_ROWS:
        return images.join(F.broadcast(listing.readable().select("path")), "path",
                           "left_semi")
    if listing.n_done <= BROADCAST_ROWS:
        return images.join(F.broadcast(listing.done), "path", "left_anti")
    logger.warning("--resume: %d inputs kept and %d to read: both too many to broadcast, "
                   "so the images to read are shuffled once", listing.n_done,
                   listing.n_to_read)
    return images.join(listing.done, "path", "left_anti")


def records_frame(spark: SparkSession, records: list[ErrorRecord]) -> DataFrame:
    """Driver-side error records in the ``errors/`` schema."""
    return spark.createDataFrame(records, ERROR_RECORD_DDL).select(
        "path", "label", "length",
        F.expr("timestamp_millis(mtime_ms)").alias("modification_time"), "error", "detail",
    )


def fetch_paths(paths: Iterator[pd.Series]) -> Iterator[pd.Series]:
    """Scalar-iterator pandas UDF body: paths (local, or ``s3://`` through boto3) →
    bytes; None for a file gone since it was listed, which the featurizer records as
    ``not_read``.

    One S3 client per task, made on the executor from its own boto3 configuration. Any
    other failure to read fails the task, so Spark retries it.
    """
    client = None
    for batch in paths:
        out: list[bytes | None] = []
        for path in batch:
            if s3.is_s3(path):
                from botocore.exceptions import ClientError

                client = client or s3.client()
                loc = s3.S3Uri.parse(path)
                try:
                    out.append(client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read())
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "NoSuchKey":
                        raise
                    out.append(None)
                continue
            try:
                with open(local_path(path), "rb") as fh:
                    out.append(fh.read())
            except FileNotFoundError:
                out.append(None)
        yield pd.Series(out, dtype=object)


def read_by_path(readable: DataFrame, partitions: int) -> DataFrame:
    """The ``binaryFile`` schema (``path, modificationTime, length, content``, and
    ``label`` when the list gives one) for the keys of the files to read, spread over
    ``partitions`` tasks, each Python worker reading its files' bytes itself.

    The fetch is a pandas UDF that the featurizer's UDF consumes: Spark chains the two
    in one Python worker, so the bytes never pass through the JVM, and a task carries
    no file list (its rows come from a shuffle of the keys), so its size is free.
    """
    from pyspark.sql.functions import pandas_udf

    fetch = pandas_udf("binary")(fetch_paths)  # type: ignore[call-overload]
    extra = ["label"] if "label" in readable.columns else []
    return readable.repartition(max(partitions, 1)).select(
        "path", F.expr("timestamp_millis(mtime_ms)").alias("modificationTime"), "length",
        fetch("path").alias("content"), *extra)
