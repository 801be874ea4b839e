"""Where a job writes its run directory: through Spark's filesystem, or, for S3 where
this Spark has none, into a local staging folder uploaded at the end (manifest last)."""
from __future__ import annotations

import logging
import shutil
import tempfile

from pyspark.sql import SparkSession

from featurize import s3, storage
from featurize.config import ConfigError

logger = logging.getLogger(__name__)

#: Files whose presence says a run (or its classifier) finished.
MARKERS = ("manifest.json", "metrics.json")


class RunOutput:
    """A job's output location.

    Parameters
    ----------
    spark : SparkSession
    uri : str
        What the user gave as ``--output``.
    overwrite : bool
        Replace what is there.
    resume : bool
        Keep what is there (the job decides what to reuse); needs Spark's own
        filesystem for the output's scheme.

    Attributes
    ----------
    mode : str
        ``spark`` (Spark writes ``uri`` itself) or ``boto3`` (Spark writes ``write_uri``,
        a local folder, and :meth:`publish` uploads it to ``uri``).
    write_uri : str
        Where Spark writes.
    """

    def __init__(self, spark: SparkSession, uri: str, overwrite: bool,
                 resume: bool = False) -> None:
        self.spark = spark
        self.uri = uri
        self.overwrite = overwrite
        self.resume = resume
        self.mode = storage.io_mode(spark, uri, "--output")
        if resume and self.mode == "boto3":
            raise ConfigError(
                f"--resume {uri}: this Spark has no filesystem for s3://, so the run would "
                f"be rebuilt in a local folder and uploaded; resume a local copy of the run "
                f"instead (or run on EMR, where Spark writes s3:// itself).")
        self._staging: str | None = None
        self.write_uri = uri
        if self.mode == "boto3" and not s3.S3Uri.parse(uri).prefix:
            raise ConfigError(f"--output {uri}: give a prefix (s3://bucket/runs/name), not a "
                              f"bucket root; --overwrite would empty the whole bucket.")

    def check(self) -> None:
        """Refuse a non-empty output unless ``overwrite`` (before any work)."""
        if self.overwrite or self.resume:
            return
        if self.mode == "spark":
            taken = storage.is_nonempty(self.spark, self.uri)
        else:
            taken = not s3.prefix_is_empty(s3.client(), self.uri)
        if taken:
            raise ConfigError(
                f"--output {self.uri} already exists and is not empty; pass --overwrite to "
                f"replace it, --resume to featurize only the inputs it does not hold yet, "
                f"or choose another --output.")

    def prepare(self) -> None:
        """Clear the output if ``overwrite``; create the staging folder (boto3 mode)."""
        if self.mode == "spark":
            if self.overwrite:
                # The markers of a finished run go first: a delete stopped halfway must
                # not leave "complete" beside half the old outputs.
                for marker in MARKERS:
                    storage.delete(self.spark, storage.join(self.uri, marker))
                storage.delete(self.spark, self.uri)
            return
        if self.overwrite:
            client = s3.client()
            loc = s3.S3Uri.parse(self.uri)
            for marker in MARKERS:
                s3.delete_prefix(client, loc.uri(f"{loc.prefix.rstrip('/')}/{marker}"))
            n = s3.delete_prefix(client, self.uri)
            logger.info("deleted %d objects under %s", n, self.uri)
        self._staging = tempfile.mkdtemp(prefix="featurize-run-")
        self.write_uri = "file:" + self._staging
        logger.info("output: writing locally in %s, then uploading to %s with boto3",
                    self._staging, self.uri)

    def publish(self) -> None:
        """Upload the staged run directory (boto3 mode), manifest last; then clean up."""
        if self._staging is None:
            return
        try:
            n = s3.upload_tree(s3.client(), self._staging, self.uri)
            logger.info("uploaded %d objects to %s", n, self.uri)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
