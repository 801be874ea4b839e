"""An S3 Inventory report as an input list: its ``manifest.json`` names data files (CSV,
ORC or Parquet) that Spark reads; each current object becomes a ``path``.

What the format is, from AWS's S3 user guide ("Locating your inventory list",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html,
and "Amazon S3 Inventory list",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory.html):
``manifest.json`` holds ``destinationBucket`` (the bucket's ARN), ``fileFormat``
(``CSV``, ``ORC`` or ``Parquet``), ``fileSchema`` (for CSV the column names in order,
comma-separated) and ``files`` (each ``key`` a data file in the destination bucket).
CSV data files are gzipped ("a CSV file compressed with GZIP"), and "When using the CSV
file format, the key name is URL-encoded and must be decoded before you can use it"
(storage-inventory.html). AWS does not say that CSV files have no header line nor how
spaces are encoded; its S3 Select example of an inventory file starts with a data row,
and public readers decode ``+`` as a space (cloud-custodian issue 1997), as done here.
A report of all versions also lists old versions and delete markers (``IsLatest``,
``IsDeleteMarker``, written ``true``/``false``): only current objects are inputs.
"""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.errors import ConfigError
from featurize.storage import filesystem
from featurize.storage.filesystem import fetched_locally

FORMATS = ("CSV", "ORC", "PARQUET")


def decoded_key(key: Column) -> Column:
    """A CSV inventory's URL-encoded key, decoded in the JVM (``+`` is a space)."""
    return F.call_function("reflect", F.lit("java.net.URLDecoder"), F.lit("decode"), key,
                           F.lit("UTF-8"))


def read_manifest(spark: SparkSession, uri: str) -> dict:
    """The parsed ``manifest.json``, checked for what this reader needs.

    Raises
    ------
    ConfigError
        Not a JSON object with ``destinationBucket``, ``fileFormat`` and ``files``, or
        a format this reader does not know.
    """
    try:
        manifest = json.loads(filesystem.fetch_text(spark, uri, "--input-list"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--input-list {uri}: not JSON ({exc}); an S3 Inventory "
                          f"manifest.json was expected.") from None
    missing = [k for k in ("destinationBucket", "fileFormat", "files")
               if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise ConfigError(f"--input-list {uri}: not an S3 Inventory manifest (no "
                          f"{', '.join(missing)}).")
    if str(manifest["fileFormat"]).upper() not in FORMATS:
        raise ConfigError(f"--input-list {uri}: fileFormat {manifest['fileFormat']!r}; "
                          f"S3 Inventory writes CSV, ORC or Parquet.")
    return manifest


def read_inventory(spark: SparkSession, uri: str) -> DataFrame:
    """``path`` of every current object the report lists (``s3://bucket/key``, with the
    manifest's own scheme, so ``s3a://`` lists give ``s3a://`` paths)."""
    manifest = read_manifest(spark, uri)
    scheme = urlsplit(uri).scheme or "s3"
    destination = str(manifest["destinationBucket"]).split(":::")[-1]
    files = [fetched_locally(spark, f"{scheme}://{destination}/{f['key']}")
             for f in manifest["files"]]
    if not files:
        return spark.createDataFrame([], "path string")
    fmt = str(manifest["fileFormat"]).upper()
    if fmt == "CSV":
        names = [c.strip() for c in str(manifest.get("fileSchema", "")).split(",")]
        if "Bucket" not in names or "Key" not in names:
            raise ConfigError(f"--input-list {uri}: fileSchema {manifest.get('fileSchema')!r} "
                              f"has no Bucket and Key columns.")
        frame = spark.read.csv(files, schema=", ".join(f"`{n}` string" for n in names))
        bucket, key = F.col("Bucket"), decoded_key(F.col("Key"))
        latest = [("IsLatest", "true"), ("IsDeleteMarker", "false")]
    else:
        frame = (spark.read.parquet(*files) if fmt == "PARQUET" else spark.read.orc(files))
        frame = frame.toDF(*[c.lower() for c in frame.columns])
        bucket, key = F.col("bucket"), F.col("key")
        latest = [("is_latest", "true"), ("is_delete_marker", "false")]
    for column, keep in latest:
        if column in frame.columns:
            frame = frame.where(F.lower(F.col(column).cast("string")) == keep)
    return frame.select(F.concat(F.lit(f"{scheme}://"), bucket, F.lit("/"), key).alias("path"))
