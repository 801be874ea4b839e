"""What is under ``--input``, known before any content is read, and the one reader of it.

The input is read one of two ways, decided once (:func:`featurize.storage.io_mode`) and
carried in :attr:`Listing.mode`: ``spark`` (the ``binaryFile`` reader over a Hadoop
filesystem: local, ``s3://`` on EMR, ``hdfs://``) or ``boto3`` (S3 where this Spark has no
filesystem: listed on the driver, fetched on the executors). Everything that reads the
input goes through :func:`binary_files` or :func:`read_contents`.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import unquote, urlsplit

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize import s3, storage
from featurize.config import FeaturizeConfig
from featurize.errors import ConfigError
from featurize.rundir import ErrorRecord, FileKey, label_of

logger = logging.getLogger(__name__)


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


def binary_files(spark: SparkSession, input_uri: str,
                 extensions: tuple[str, ...] | None) -> DataFrame:
    """The ``binaryFile`` reader over ``input_uri`` (recursive), lazily.

    ``path, modificationTime, length, content``; ``content`` is read from storage only
    when an action needs it, and ``length`` filters are evaluated on the file status
    before a file is opened. ``extensions`` None: every file (Spark still skips names
    starting with ``_`` or ``.``).
    """
    reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
    if extensions is not None:
        reader = reader.option("pathGlobFilter", extension_glob(extensions))
    return reader.load(input_uri)


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


@dataclass(frozen=True)
class Listing:
    """What is under ``--input``, known before any content is read."""

    uri: str
    #: The input folder as Spark qualifies it in ``path`` columns (labels are relative).
    root: str
    #: ``spark`` or ``boto3``: how the input is listed and read.
    mode: str
    extensions: tuple[str, ...]
    #: Every input, in ``path`` column form. Includes 0-byte files, which the
    #: ``binaryFile`` scan silently skips: comparing this set with the scanned rows is
    #: how they get into ``errors/`` instead of disappearing.
    listed: frozenset[str]
    n_bytes: int
    #: boto3 mode: every listed object with its size and time (Spark's index otherwise).
    objects: tuple[FileKey, ...] = ()
    #: Files the extension filter left out, by lower-case extension.
    skipped: dict[str, int] = field(default_factory=dict)
    #: Files over the byte limit; their content is never read.
    too_large: tuple[ErrorRecord, ...] = ()
    #: Inputs whose rows ``--resume`` keeps from the existing run.
    done: frozenset[str] = frozenset()

    @property
    def n_inputs(self) -> int:
        return len(self.listed)

    @cached_property  # a frozen dataclass keeps it: derived from fields set once
    def to_read(self) -> frozenset[str]:
        """The inputs this run reads and featurizes."""
        return self.listed - self.done - {t.path for t in self.too_large}

    def files(self, spark: SparkSession) -> DataFrame:
        """The input's image files through Spark's reader (``spark`` mode)."""
        return binary_files(spark, self.uri, self.extensions)


def list_inputs(spark: SparkSession, config: FeaturizeConfig, mode: str, *,
                folder: bool = True) -> Listing:
    """List the inputs on the driver and check the configuration against them.

    ``mode`` ``spark``: the ``binaryFile`` reader's file index (metadata, no Spark job).
    ``boto3``: a paginated S3 listing, for S3 where this Spark has no filesystem.

    Raises
    ------
    ConfigError
        Not a folder (a missing path, or with ``folder`` a file), no matching files, or
        ``--pca-k`` larger than the number of inputs.
    """
    skipped: dict[str, int] = {}
    objects: tuple[FileKey, ...] = ()
    too_large: list[ErrorRecord] = []
    if mode == "boto3":
        client = s3.client()
        objects = tuple(FileKey(*o) for o in
                        s3.list_images(client, config.input, config.extensions, skipped))
        if not objects and not skipped and s3.prefix_is_empty(client, config.input):
            raise ConfigError(f"--input {config.input}: there are no objects under this "
                              f"prefix; check the bucket and prefix.")
        root = s3.S3Uri.parse(config.input).root
        listed = frozenset(o.path for o in objects)
        n_bytes = sum(o.length for o in objects)
        too_large = [too_large_record(config, o, root) for o in objects
                     if o.length > config.file_byte_limit]
    else:
        if not (storage.is_directory(spark, config.input) if folder
                else storage.exists(spark, config.input)):
            raise ConfigError(
                f"--input {config.input} is not a folder (or does not exist); give the "
                f"folder that holds the images (<label>/<file>.jpg).")
        root = storage.qualify(spark, config.input)
        # The unfiltered walk (for the extension report) runs beside the filtered one:
        # each is a driver-side file index, and together they were 40% of the fixed
        # cost on 22,668 files.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="featurize-list") as pool:
            everything = pool.submit(all_files, spark, config.input)
            images = binary_files(spark, config.input, config.extensions)
            listed = frozenset(spark_path(u) for u in images.inputFiles())
            n_bytes = listed_bytes(images) if listed else 0
            skipped = skipped_by_extension(everything.result(), listed)
    _check_listing(config, listed, skipped)
    return Listing(uri=config.input, root=root, mode=mode, extensions=config.extensions,
                   listed=listed, n_bytes=n_bytes, objects=objects, skipped=skipped,
                   too_large=tuple(sorted(too_large)))


def _check_listing(config: FeaturizeConfig, listed: frozenset[str],
                   skipped: dict[str, int]) -> None:
    others = ", ".join(f"{n} {e}" for e, n in sorted(skipped.items()))
    if skipped:
        logger.warning("not read because of their extension (add them with --extensions if "
                       "they are images Pillow can decode): %s", others)
    if not listed:
        exts = ", ".join("." + e for e in config.extensions)
        other = f"; it holds {sum(skipped.values())} other file(s): {others}" if skipped else ""
        raise ConfigError(
            f"--input {config.input} holds no files ending in {exts} (any letter case)"
            f"{other}.")
    if config.pca_k is not None and config.pca_k > len(listed):
        raise ConfigError(
            f"--pca-k {config.pca_k} is larger than the {len(listed)} input images; lower "
            f"--pca-k or add images.")


def too_large_record(config: FeaturizeConfig, key: FileKey, root: str) -> ErrorRecord:
    limit = config.file_byte_limit
    why = (f"more than --max-file-bytes {config.max_file_bytes}" if config.max_file_bytes
           and config.max_file_bytes <= limit
           else f"more than Spark's binaryFile reader can hold ({limit} bytes)")
    return ErrorRecord(key.path, label_of(key.path, root), key.length, key.mtime_ms,
                       "too_large", f"{key.length} bytes is {why}; not read")


def file_keys(spark: SparkSession, listing: Listing, min_length: int = -1) -> list[FileKey]:
    """(path, length, mtime_ms) of the scanned inputs longer than ``min_length``.

    Metadata only: without the content column ``binaryFile`` reads no bytes. In boto3
    mode the listing already has them.
    """
    if listing.mode == "boto3":
        return [o for o in listing.objects if o.length > min_length]
    rows = (listing.files(spark).where(F.col("length") > min_length)
            .select("path", "length", F.expr("unix_millis(modificationTime)").alias("ms"))
            .collect())
    return [FileKey(r["path"], int(r["length"]), int(r["ms"])) for r in rows]


def find_too_large(spark: SparkSession, config: FeaturizeConfig,
                   listing: Listing) -> tuple[ErrorRecord, ...]:
    """Inputs over the byte limit (not kept by a resume), as ``errors/`` records.

    The metadata scan is skipped when all inputs together are under the limit.
    """
    limit = config.file_byte_limit
    found = listing.too_large
    if listing.mode == "spark" and listing.n_bytes > limit:
        found = tuple(sorted(too_large_record(config, k, listing.root)
                             for k in file_keys(spark, listing, min_length=limit)))
    found = tuple(t for t in found if t.path not in listing.done)
    if found:
        logger.warning("%d file(s) over the byte limit go to errors/ as too_large, unread",
                       len(found))
    return found


def all_files(spark: SparkSession, input_uri: str) -> list[str]:
    """Every file under ``input_uri`` as Spark's file index lists it, without the
    extension glob (driver-side metadata, no Spark job); hidden names are skipped as
    Spark skips them."""
    return [spark_path(uri) for uri in binary_files(spark, input_uri, None).inputFiles()]


def skipped_by_extension(everything: list[str], listed: frozenset[str]) -> dict[str, int]:
    """Files of ``everything`` that the extension filter left out of ``listed``, by
    extension.

    >>> skipped_by_extension(["/a/x.jpg", "/a/y.gif", "/a/z.GIF", "/a/notes"],
    ...                      frozenset({"/a/x.jpg"}))
    {'.gif': 2, '(none)': 1}
    """
    counts: dict[str, int] = {}
    for path in everything:
        if path not in listed:
            ext = s3.extension_of(path)
            counts[ext] = counts.get(ext, 0) + 1
    return counts


def current_keys(spark: SparkSession, listing: Listing) -> dict[str, tuple[int, int]]:
    """path -> (length, mtime_ms) of every listed input (metadata only, no content)."""
    found = {k.path: (k.length, k.mtime_ms) for k in file_keys(spark, listing)}
    for path in listing.listed - found.keys():  # 0-byte files: the scan skips them
        found[path] = storage.stat(spark, path)
    return found


def unscanned(spark: SparkSession, scanned: DataFrame, listing: Listing,
              n_scanned: int) -> list[ErrorRecord]:
    """Inputs meant to be read that the scan did not return (0-byte files), as records.

    Only when the counts differ are the scanned paths collected (from the persisted
    result) and the few missing files stat-ed on the driver.
    """
    if n_scanned == len(listing.to_read):
        return []
    seen = {r["path"] for r in scanned.select("path").collect()}
    records = []
    for path in sorted(listing.to_read - seen):
        if not storage.exists(spark, path):
            records.append(ErrorRecord(path, label_of(path, listing.root), 0, 0, "not_read",
                                       "listed, but gone when it was read (deleted during "
                                       "the run?)"))
            continue
        length, mtime_ms = storage.stat(spark, path)
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

    Spark mode: the reader, without too-large files (filtered on the file status, so
    their bytes are never read) and without the inputs a resume keeps (dropped after the
    scan: binaryFile pushes down only length and time filters). boto3 mode: only the
    objects to read, fetched on ``partitions`` tasks.
    """
    if listing.mode == "boto3":
        keep = listing.to_read
        return s3.read_images(spark, tuple(o for o in listing.objects if o.path in keep),
                              partitions)
    images = listing.files(spark).where(F.col("length") <= F.lit(config.file_byte_limit))
    if listing.done:
        done = spark.createDataFrame([(p,) for p in sorted(listing.done)], "path string")
        images = images.join(F.broadcast(done), "path", "left_anti")
    return images
