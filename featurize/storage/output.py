"""Where a job writes its run directory, and the manifest that records the run.

Through Spark's filesystem, or, for S3 where this Spark has none, into a local staging
folder uploaded at the end (manifest last). :meth:`RunOutput.recorded` is the one way a
job's manifest is written: ``running`` first, ``failed`` with the first error line on
any exception, ``complete`` last, then the staged folder is published.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from featurize.cache import cache_root
from featurize.encryption import Encryption
from featurize.errors import ConfigError, S3WriteError, UploadError
from featurize.manifest import StageTimer, command_line, first_error_line, to_json, utc_now
from featurize.rundir import MANIFEST, RunDir
from featurize.storage import filesystem, s3

logger = logging.getLogger(__name__)


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
    encryption : Encryption
        For the objects uploaded with boto3 (Spark's own writes have it from
        :meth:`Encryption.apply`).
    resumable : bool
        The job has ``--resume`` (featurize): a failed upload's message offers it.

    Attributes
    ----------
    mode : str
        ``spark`` (Spark writes ``uri`` itself) or ``boto3`` (Spark writes ``write_uri``,
        the :func:`staging_dir` of ``uri``, and :meth:`publish` uploads it to ``uri``).
    write_uri : str
        Where Spark writes.
    """

    def __init__(self, spark: SparkSession, uri: str, overwrite: bool,
                 resume: bool = False, encryption: Encryption = Encryption(),
                 resumable: bool = False) -> None:
        self.spark = spark
        self.resumable = resumable
        self.encryption = encryption
        self.uri = uri
        self.overwrite = overwrite
        self.resume = resume
        self.mode = filesystem.io_mode(spark, uri, "--output")
        self.write_uri = uri
        #: boto3 mode: where the run is written, kept until its upload succeeds.
        self.staging: Path | None = None
        if self.mode == "spark":
            return
        if not s3.S3Uri.parse(uri).prefix:
            raise ConfigError(f"--output {uri}: give a prefix (s3://bucket/runs/name), not a "
                              f"bucket root; --overwrite would empty the whole bucket.")
        self.staging = staging_dir(uri)
        if resume and not (self.staging / MANIFEST).is_file():
            raise ConfigError(
                f"--resume {uri}: this Spark has no filesystem for s3://, so a run is resumed "
                f"from the copy it keeps in {self.staging} until its upload succeeds, and "
                f"there is none (the upload finished, or the run never started here). Run "
                f"on EMR (Spark writes s3:// itself), resume a local copy, or use --overwrite.")
        self.write_uri = "file:" + str(self.staging)

    def check(self) -> None:
        """Before any work: refuse a non-empty output unless ``overwrite``; on S3, probe
        that the credentials may write there (:func:`s3.probe_write` with boto3,
        :func:`filesystem.probe_write` through Spark's S3 filesystem)."""
        if not (self.overwrite or self.resume):
            if self.mode == "spark":
                taken = filesystem.is_nonempty(self.spark, self.uri)
            else:
                taken = not s3.prefix_is_empty(s3.client(), self.uri)
            if taken:
                raise ConfigError(
                    f"--output {self.uri} already exists and is not empty; pass --overwrite "
                    f"to replace it, --resume to featurize only the inputs it does not hold "
                    f"yet, or choose another --output.")
        if self.mode == "boto3":
            s3.probe_write(s3.client(), self.uri, self.encryption.boto3_args())
        elif s3.is_s3(self.uri):
            filesystem.probe_write(self.spark, self.uri)

    def prepare(self) -> None:
        """Clear the output if ``overwrite``; in boto3 mode, start the staged run afresh
        (``resume``: keep it, the job resumes it and the upload replaces what S3 holds)."""
        if self.mode == "spark":
            if self.overwrite:
                # The markers of a finished run go first: a delete stopped halfway must
                # not leave "complete" beside half the old outputs.
                for marker in RunDir.MARKERS:
                    filesystem.delete(self.spark, RunDir(self.uri).at(marker))
                filesystem.delete(self.spark, self.uri)
            return
        assert self.staging is not None
        if self.resume:
            logger.info("output: resuming the run staged in %s, then uploading it to %s",
                        self.staging, self.uri)
            return
        if self.overwrite:
            client = s3.client()
            # One object each: as prefixes ("…/manifest.json/") they would match nothing.
            for marker in RunDir.MARKERS:
                s3.delete_key(client, RunDir(self.uri).at(marker))
            n = s3.delete_prefix(client, self.uri)
            logger.info("deleted %d objects under %s", n, self.uri)
        if (self.staging / MANIFEST).is_file():
            logger.warning("a staged copy of an earlier run of %s was in %s: replaced by this "
                           "run (--resume continues such a copy instead)", self.uri, self.staging)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        (self.staging.parent / f"{self.staging.name}.uri").write_text(self.uri + "\n")
        logger.info("output: writing locally in %s, then uploading to %s with boto3",
                    self.staging, self.uri)

    @property
    def run_dir(self) -> RunDir:
        """Where Spark writes this run's files (the staging folder in boto3 mode)."""
        return RunDir(self.write_uri)

    @contextmanager
    def recorded(self, manifest: dict[str, Any], timer: StageTimer) -> Iterator[RunDir]:
        """Prepare the output and record the run in its manifest around the block.

        Writes ``manifest`` with ``status: running`` before the block (a run stopped at
        any point after this never looks complete, and ``--resume`` knows what made its
        files); ``failed`` with the first error line if the block raises (then
        re-raises); ``complete`` when it returns. Either way the staged folder is
        published last. Yields the run directory to write into.
        """
        def close(**outcome: str) -> None:
            manifest.update(outcome, finished_at=utc_now())
            manifest["timings_seconds"]["total"] = timer.total()
            filesystem.write_text(self.spark, self.run_dir.manifest, to_json(manifest))
            self.publish(complete=outcome["status"] == "complete")

        manifest["status"] = "running"
        try:
            self.prepare()
            filesystem.write_text(self.spark, self.run_dir.manifest, to_json(manifest))
            yield self.run_dir
        except BaseException as exc:
            try:
                close(status="failed", error=first_error_line(exc))
            except Exception:  # noqa: BLE001 - never mask the run's own failure
                logger.exception("could not write the failed manifest")
            raise
        close(status="complete")

    def publish(self, complete: bool) -> None:
        """Upload the staged run (boto3 mode), manifest last; delete the staged copy only
        once a complete run is all in S3.

        Raises
        ------
        UploadError
            The upload failed after every retry: nothing is lost, the message says where
            the run is kept and which command finishes the upload.
        """
        if self.staging is None:
            return
        try:
            n = s3.upload_tree(s3.client(), str(self.staging), self.uri,
                               extra_args=self.encryption.boto3_args())
        except S3WriteError as exc:
            raise UploadError(
                f"the run {'is complete' if complete else 'failed'}, but its upload to "
                f"{self.uri} failed: {exc}. Nothing is lost: the run is kept in "
                f"{self.staging}. {self.finish_hint}") from exc
        logger.info("uploaded %d objects to %s", n, self.uri)
        if complete:
            shutil.rmtree(self.staging, ignore_errors=True)
            (self.staging.parent / f"{self.staging.name}.uri").unlink(missing_ok=True)
        else:
            logger.info("the failed run stays staged in %s: %s", self.staging,
                        self.finish_hint)

    @property
    def finish_hint(self) -> str:
        """The command that resumes (or reruns) this job and uploads the staged run."""
        argv = [a for a in command_line() if a != "--overwrite"]
        if self.resumable and "--resume" not in argv:
            argv.append("--resume")
        how = ("resumes it (nothing already featurized is featurized again) and uploads it"
               if self.resumable else "runs it again")
        return f"This command {how}: spark-submit {shlex.join(argv)}"


def staging_dir(uri: str) -> Path:
    """Where a boto3-mode run of ``uri`` is written before its upload:
    ``<cache>/staging/<sha256 of the URI, 16 hex>`` (:mod:`featurize.cache`), the same
    folder for the same output, so ``--resume`` finds it."""
    digest = hashlib.sha256(uri.rstrip("/").encode("utf-8")).hexdigest()[:16]
    return cache_root() / "staging" / digest


def read_finished_run(spark: SparkSession, run_dir: RunDir) -> dict[str, Any]:
    """The manifest of a featurize run, refusing runs that did not complete.

    Raises
    ------
    ConfigError
        No manifest, or one whose status is not ``complete``.
    """
    if not filesystem.exists(spark, run_dir.manifest):
        raise ConfigError(
            f"{run_dir.uri} has no manifest.json: not a finished featurize run. Run "
            f"jobs/featurize_images.py --output {run_dir.uri} first.")
    manifest = json.loads(filesystem.read_text(spark, run_dir.manifest))
    if manifest.get("status") != "complete":
        raise ConfigError(f"{run_dir.uri}: the featurize run did not complete "
                          f"(status {manifest.get('status')!r}); rerun it.")
    return manifest
