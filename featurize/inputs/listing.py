"""What is under ``--input``, known before any content is read: a :class:`Listing`.

The input is read one of two ways, decided once (:func:`featurize.storage.filesystem.io_mode`) and
carried in :attr:`Listing.mode`: ``spark`` (the ``binaryFile`` reader over a Hadoop
filesystem: local, ``s3://`` on EMR, ``hdfs://``) or ``boto3`` (S3 where this Spark has no
filesystem: listed on the driver, fetched on the executors). Everything that reads the
input goes through :func:`binary_files` or :func:`featurize.inputs.read.read_contents`.

Whichever way the inputs are found (a walk of a prefix, :mod:`featurize.inputs.walk`; a list,
:mod:`featurize.inputs.input_list`; a boto3 listing, :mod:`featurize.inputs.read`), they
become one :class:`Listing`: a persisted DataFrame of ``path, length, mtime_ms`` on the
executors and a few counts. The label of a file is its folder's name (:func:`label_column`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.config import FeaturizeConfig
from featurize.rundir import ErrorRecord

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
    :func:`featurize.storage.s3.extension_of`)."""
    ext = F.lower(F.regexp_extract(path, r"[^/]\.([^./]+)$", 1))
    return (F.when(ext == "", F.lit("(none)"))
            .when(F.length(ext) > MAX_EXTENSION_CHARS, F.lit("(other)"))
            .otherwise(F.concat(F.lit("."), ext)))


def is_image_column(path: Column, extensions: tuple[str, ...]) -> Column:
    """The file name ends in one of ``extensions``, any letter case (what the glob keeps)."""
    return F.lower(F.regexp_extract(path, r"\.([^./]+)$", 1)).isin(list(extensions))


def label_column(path: Column, root: str) -> Column:
    """Name of the immediate parent folder of ``path``; null directly under ``root``.

    ``root`` must be qualified the way Spark reports paths (see
    :func:`featurize.storage.filesystem.qualify`), e.g. ``file:/data/images``.
    """
    parent = F.regexp_extract(path, r"^(.*)/[^/]*$", 1)
    return F.when(parent == F.lit(root.rstrip("/")), F.lit(None).cast("string")).otherwise(
        F.regexp_extract(parent, r"([^/]*)$", 1)
    )


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
    #: The Python workers read each file's bytes themselves from its path
    #: (:func:`featurize.inputs.read.read_by_path`); False: Spark's ``binaryFile`` scan
    #: reads them in the JVM (a walked prefix on a Hadoop filesystem, ``--reader``).
    workers_read: bool = True

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
