"""What is under ``--input``, known before any content is read, and the one reader of it.

The input is read one of two ways, decided once (:func:`featurize.storage.io_mode`) and
carried in :attr:`Listing.mode`: ``spark`` (the ``binaryFile`` reader over a Hadoop
filesystem: local, ``s3://`` on EMR, ``hdfs://``) or ``boto3`` (S3 where this Spark has no
filesystem: listed on the driver, fetched on the executors). Everything that reads the
input goes through :func:`binary_files` or :func:`read_contents`.

Whichever way the inputs are found (a walk of a prefix, :mod:`featurize.walk`; a list,
:mod:`featurize.input_list`; a boto3 listing), they become one :class:`Listing`: a
persisted DataFrame of ``path, length, mtime_ms`` on the executors and a few counts.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize import s3, storage
from featurize.config import FeaturizeConfig
from featurize.errors import ConfigError
from featurize.pipeline import label_column
from featurize.rundir import ERROR_RECORD_DDL, FILE_KEY_DDL, ErrorRecord, label_of

logger = logging.getLogger(__name__)

#: At most this many paths are broadcast to skip (or keep) inputs on a resume: the driver
#: builds a broadcast table in its heap (~150 bytes a path: 30 MB). Beyond it the join
#: shuffles.
BROADCAST_ROWS = 200_000

#: The job group of the listing's metadata jobs: the only Spark jobs a run starts before
#: its configuration is known good (no content is read, nothing written).
LISTING_JOB_GROUP = "featurize-listing"

#: Extensions longer than this are reported as ``(other)``: the report stays a few rows
#: whatever the file names.
MAX_EXTENSION_CHARS = 8


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
    before a file is opened (a filter on ``path`` is not: the content of every file the
    reader lists is read, hence the glob). ``extensions`` None: every file (Spark still
    skips names starting with ``_`` or ``.``).
    """
    reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
    if extensions is not None:
        reader = reader.option("pathGlobFilter", extension_glob(extensions))
    return reader.load(input_uri)


def extension_column(path: Column) -> Column:
    """Lower-case extension of a path's file name with its dot, ``(none)`` without one,
    ``(other)`` past :data:`MAX_EXTENSION_CHARS` (the SQL twin of
    :func:`featurize.s3.extension_of`)."""
    ext = F.lower(F.regexp_extract(path, r"[^/]\.([^./]+)$", 1))
    return (F.when(ext == "", F.lit("(none)"))
            .when(F.length(ext) > MAX_EXTENSION_CHARS, F.lit("(other)"))
            .otherwise(F.concat(F.lit("."), ext)))


def is_image_column(path: Column, extensions: tuple[str, ...]) -> Column:
    """The file name ends in one of ``extensions``, any letter case (what the glob keeps)."""
    return F.lower(F.regexp_extract(path, r"\.([^./]+)$", 1)).isin(list(extensions))


@dataclass(frozen=True)
class Listing:
    """What is under ``--input``, known before any content is read.

    ``images`` is the per-file part, a DataFrame that stays on the executors; the rest are
    counts and a few records.
    """

    uri: str
    #: The input folder as Spark qualifies it in ``path`` columns (labels are relative).
    root: str
    #: ``spark`` or ``boto3``: how the input is listed and read.
    mode: str
    extensions: tuple[str, ...]
    #: ``path, length, mtime_ms`` of every image file the reader returns (persisted).
    #: In spark mode 0-byte files are not here (the ``binaryFile`` scan skips them):
    #: they are ``empty``.
    images: DataFrame
    #: Image files listed, 0-byte ones included.
    n_inputs: int
    n_bytes: int
    #: Files over the byte limit (their content is never read; after a resume, those
    #: not kept) and what the limit is.
    n_too_large: int
    byte_limit: int
    too_large_why: str
    #: Files (and their bytes) the content scan covers: non-empty images under the limit.
    scan_files: int
    scan_bytes: int
    #: Files the extension filter left out, by lower-case extension.
    skipped: dict[str, int]
    #: The unfiltered reader of the walk (spark mode): reused for the content read when
    #: every file is an image, so the input is walked once.
    walked: DataFrame | None = None
    #: 0-byte image files, as ``errors/`` records (spark mode).
    empty: tuple[ErrorRecord, ...] = ()
    #: Paths of the inputs ``--resume`` keeps from the existing run, and how many
    #: (distinct; too-large and empty ones included).
    done: DataFrame | None = None
    n_done: int = 0
    #: ``--input-list``: listed files that do not exist (``path`` [, ``label``]).
    missing: DataFrame | None = None
    n_missing: int = 0
    #: ``--input-list`` with a ``label`` column: labels come from it, not the folders.
    labels_given: bool = False

    @property
    def n_to_read(self) -> int:
        """The inputs this run reads and featurizes."""
        return (self.n_inputs - self.n_done - self.n_too_large - len(self.empty)
                - self.n_missing)

    def label(self) -> Column:
        """The ``label`` of a row of ``images``: given by the list, or the parent folder."""
        return F.col("label") if self.labels_given else label_column(F.col("path"), self.root)

    def missing_rows(self) -> DataFrame:
        """Listed files that do not exist, as ``errors/`` rows (``not_read``)."""
        assert self.missing is not None
        return self.missing.select(
            "path", self.label().alias("label"), F.lit(0).cast("long").alias("length"),
            F.expr("timestamp_millis(0)").alias("modification_time"),
            F.lit("not_read").alias("error"),
            F.lit("listed in --input-list, but no such file").alias("detail"))

    def files(self, spark: SparkSession) -> DataFrame:
        """The input's image files through Spark's reader (``spark`` mode): the walk's own
        reader when the input holds nothing else, else a second, filtered walk (a filter
        on ``path`` would still read every file's content)."""
        if self.walked is not None and not self.skipped:
            return self.walked
        return binary_files(spark, self.uri, self.extensions)

    def readable(self) -> DataFrame:
        """``images`` under the byte limit and not kept by a resume (keys only)."""
        keys = self.images.where(F.col("length") <= F.lit(self.byte_limit))
        return keys if self.done is None else keys.join(self.done, "path", "left_anti")

    def too_large_rows(self) -> DataFrame:
        """The files over the byte limit not kept by a resume, as ``errors/`` rows."""
        big = self.images.where(F.col("length") > F.lit(self.byte_limit))
        if self.done is not None:
            big = big.join(self.done, "path", "left_anti")
        return big.select(
            "path", self.label().alias("label"), "length",
            F.expr("timestamp_millis(mtime_ms)").alias("modification_time"),
            F.lit("too_large").alias("error"),
            F.concat(F.col("length").cast("string"),
                     F.lit(f" bytes is {self.too_large_why}; not read")).alias("detail"))

    def with_done(self, done: DataFrame | None, n_done: int,
                  kept_too_large: int = 0) -> "Listing":
        """This listing with the ``n_done`` paths a resume keeps, ``kept_too_large`` of
        them files over the limit (kept as their ``too_large`` rows): those and the
        empty files among them are no longer this run's."""
        from dataclasses import replace

        if done is None or n_done == 0:
            return replace(self, done=done, n_done=0)
        kept_empty = set()
        if self.empty:  # a few 0-byte files, looked up among the kept paths
            paths = [r.path for r in self.empty]
            kept_empty = {r["path"] for r in done.where(F.col("path").isin(paths)).collect()}
        return replace(self, done=done, n_done=n_done,
                       n_too_large=self.n_too_large - kept_too_large,
                       empty=tuple(r for r in self.empty if r.path not in kept_empty))


def why_too_large(config: FeaturizeConfig) -> str:
    limit = config.file_byte_limit
    return (f"more than --max-file-bytes {config.max_file_bytes}" if config.max_file_bytes
            and config.max_file_bytes <= limit
            else f"more than Spark's binaryFile reader can hold ({limit} bytes)")


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
        from featurize.input_list import list_given

        listing = list_given(spark, config)
    elif mode == "boto3":
        listing = _list_boto3(spark, config)
    else:
        if not (storage.is_directory(spark, config.input) if folder
                else storage.exists(spark, config.input)):
            raise ConfigError(
                f"--input {config.input} is not a folder (or does not exist); give the "
                f"folder that holds the images (<label>/<file>.jpg).")
        from featurize.walk import list_prefix

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
        if listing.mode == "boto3" or not storage.exists(spark, path):
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
    their bytes are never read) and without the inputs a resume keeps (joined after the
    scan, with whichever side is small broadcast; binaryFile pushes down only length and
    time filters). boto3 mode: only the objects to read, fetched on ``partitions`` tasks.
    """
    if listing.mode == "boto3":
        return s3.read_images(spark, listing.readable(), partitions)
    if listing.mode == "list":
        from featurize.input_list import read_listed

        return read_listed(listing.readable(), partitions)
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
