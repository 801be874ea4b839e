"""Small filesystem helpers over Hadoop's FileSystem API (through the SparkSession).

Going through Hadoop means the same code handles every scheme Spark can read and
write: local paths and ``file:`` here, ``s3://`` on EMR, ``hdfs://`` on a cluster.
"""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from featurize.errors import ConfigError
from featurize.storage import s3

logger = logging.getLogger(__name__)


def _jvm(spark: SparkSession) -> Any:
    return spark.sparkContext._jvm  # type: ignore[attr-defined]


def _filesystem(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    """(FileSystem, qualified Path) for a URI; local filesystems without checksums."""
    jvm = _jvm(spark)
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(conf)
    if fs.getScheme() == "file":
        # LocalFileSystem writes .crc side files; the raw one does not.
        fs = fs.getRawFileSystem()
    return fs, fs.makeQualified(path)


def has_filesystem(spark: SparkSession, uri: str) -> bool:
    """Whether this Spark has a Hadoop filesystem for the URI's scheme."""
    jvm = _jvm(spark)
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    scheme = jvm.org.apache.hadoop.fs.Path(uri).toUri().getScheme()
    if scheme is None:
        return True
    try:
        jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(scheme, conf)
    except Py4JJavaError as exc:
        # No mapping for the scheme at all, or one naming a class that is not on the
        # classpath: pyspark's own Hadoop config maps s3a:// to S3AFileSystem without
        # bundling hadoop-aws (a RuntimeException wrapping ClassNotFoundException).
        if not any(name in str(exc.java_exception) for name in
                   ("UnsupportedFileSystemException", "ClassNotFoundException")):
            raise
        return False
    return True


def io_mode(spark: SparkSession, uri: str, flag: str) -> str:
    """``spark`` when Spark has a filesystem for the URI, ``boto3`` for S3 without one.

    Raises
    ------
    ConfigError
        Any other scheme without a filesystem: names the scheme and what to add.
    """
    if has_filesystem(spark, uri):
        return "spark"
    if s3.is_s3(uri):
        return "boto3"
    scheme = uri.split("://", 1)[0]
    raise ConfigError(
        f"{flag} {uri}: this Spark has no filesystem for the '{scheme}://' scheme; add a "
        f"Hadoop FileSystem implementation for '{scheme}' to Spark's classpath, or use a "
        f"local path or s3://."
    )


#: Schemes whose rename is atomic, where FileOutputCommitter's v2 algorithm is safe.
ATOMIC_RENAME_SCHEMES = ("", "file", "hdfs")


def commit_options(uri: str) -> dict[str, str]:
    """Writer options for ``features/``: the v2 commit algorithm (each task's file lands
    when the task commits) where rename is atomic; nothing on an object store.

    On S3 a rename is a copy and a delete, so v2 can leave partial files behind
    (Hadoop's "Committing work to S3 with the S3A committers"); there the cluster's own
    committer applies (EMR 6.15+: its magic commit protocol) or FileOutputCommitter's
    default v1, which commits the whole write at once. docs/emr.md has the measurement.

    >>> commit_options("/tmp/run/features"), commit_options("s3://b/run/features")
    ({'mapreduce.fileoutputcommitter.algorithm.version': '2'}, {})
    """
    if urlsplit(uri).scheme in ATOMIC_RENAME_SCHEMES:
        return {"mapreduce.fileoutputcommitter.algorithm.version": "2"}
    return {}


def qualify(spark: SparkSession, uri: str) -> str:
    """Fully qualified form Spark uses in ``path`` columns (e.g. ``file:/abs/dir``)."""
    _, path = _filesystem(spark, uri)
    return str(path.toString())


def exists(spark: SparkSession, uri: str) -> bool:
    fs, path = _filesystem(spark, uri)
    return bool(fs.exists(path))


def is_directory(spark: SparkSession, uri: str) -> bool:
    fs, path = _filesystem(spark, uri)
    return bool(fs.exists(path) and fs.getFileStatus(path).isDirectory())


def is_nonempty(spark: SparkSession, uri: str) -> bool:
    """True if the URI is a file, or a folder with at least one entry."""
    fs, path = _filesystem(spark, uri)
    if not fs.exists(path):
        return False
    status = fs.getFileStatus(path)
    if not status.isDirectory():
        return True
    return len(fs.listStatus(path)) > 0


def count_parts(spark: SparkSession, uri: str) -> int:
    """How many data files (``part-*``) a table folder holds; one listing, no per-file
    call from Python."""
    fs, path = _filesystem(spark, uri)
    found = fs.globStatus(_jvm(spark).org.apache.hadoop.fs.Path(path, "part-*"))
    return 0 if found is None else len(found)


def stat(spark: SparkSession, uri: str) -> tuple[int, int]:
    """(length in bytes, modification time in ms since the epoch) of a file."""
    fs, path = _filesystem(spark, uri)
    status = fs.getFileStatus(path)
    return int(status.getLen()), int(status.getModificationTime())


def delete(spark: SparkSession, uri: str) -> None:
    """Recursively delete a URI (no error if it does not exist)."""
    fs, path = _filesystem(spark, uri)
    if fs.exists(path):
        logger.info("deleting %s", path.toString())
        fs.delete(path, True)


def rename(spark: SparkSession, src: str, dst: str) -> None:
    """Rename ``src`` to ``dst`` (same filesystem; ``dst`` must not exist)."""
    fs, src_path = _filesystem(spark, src)
    _, dst_path = _filesystem(spark, dst)
    if not fs.rename(src_path, dst_path):
        raise OSError(f"could not rename {src} to {dst}")


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write (replace) a small UTF-8 text file."""
    write_bytes(spark, uri, text.encode("utf-8"))


def write_bytes(spark: SparkSession, uri: str, data: bytes) -> None:
    """Write (replace) a small file."""
    fs, path = _filesystem(spark, uri)
    out = fs.create(path, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()


def copy_from_local(spark: SparkSession, local: str, uri: str) -> None:
    """Copy (replace) a local file of any size to ``uri``, streamed by Hadoop."""
    fs, path = _filesystem(spark, uri)
    jvm = _jvm(spark)
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path("file://" + local), path)


def probe_write(spark: SparkSession, uri: str) -> None:
    """Create and delete one empty file under ``uri`` (S3 through S3A: EMR), so that
    credentials that may not write there fail before any work, as the boto3 path's
    probe does.

    Raises
    ------
    S3AccessError
        The filesystem refused (S3A turns S3's 403 into ``AccessDeniedException``).
    """
    from featurize.errors import AWS_HINTS, S3AccessError

    probe = f"{uri.rstrip('/')}/{s3.WRITE_PROBE}"
    try:
        write_text(spark, probe, "")
        fs, path = _filesystem(spark, probe)
        fs.delete(path, False)
    except Py4JJavaError as exc:
        java = exc.java_exception
        cause = java.getClass().getSimpleName() + ": " + str(java.getMessage()).split("\n")[0]
        denied = "AccessDenied" in cause or "403" in cause
        raise S3AccessError(f"writing under {uri} (a probe before the run): {cause}"
                            + (f" ({AWS_HINTS['AccessDenied']})" if denied else "")) from None


def read_text(spark: SparkSession, uri: str) -> str:
    """Read a small UTF-8 text file."""
    fs, path = _filesystem(spark, uri)
    stream = fs.open(path)
    try:
        jvm = _jvm(spark)
        data = jvm.org.apache.commons.io.IOUtils.toByteArray(stream)
    finally:
        stream.close()
    return bytes(data).decode("utf-8")


def fetch_text(spark: SparkSession, uri: str, flag: str) -> str:
    """A small UTF-8 text file from wherever it is: through Spark's filesystem (local,
    ``s3://`` on EMR, ``hdfs://``), or with boto3 for S3 where this Spark has none.

    Raises
    ------
    ConfigError
        The file does not exist (or S3 refuses it).
    """
    if io_mode(spark, uri, flag) == "boto3":
        return s3.read_text(s3.client(), uri)
    if not exists(spark, uri):
        raise ConfigError(f"{flag} {uri}: no such file")
    return read_text(spark, uri)


def fetched_locally(spark: SparkSession, uri: str) -> str:
    """The list's URI for Spark to read: itself, or for S3 where this Spark has no
    filesystem a copy downloaded into the cache (a list is read once, by Spark)."""
    if io_mode(spark, uri, "--input-list") == "spark":
        if not exists(spark, uri):
            raise ConfigError(f"--input-list {uri}: no such file or folder.")
        return uri
    import hashlib

    from featurize.cache import cache_root

    dest = cache_root() / "lists" / hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / uri.rstrip("/").rsplit("/", 1)[-1]
    s3.download(s3.client(), uri, str(target))
    return "file:" + str(target)
