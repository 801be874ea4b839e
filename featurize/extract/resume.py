"""``--resume``: what a run directory already holds, what of it to keep, and how the
features are rewritten around it.

Rows are kept when their ``(path, length, modification_time)`` matches an input listed
now; error rows are kept too (decoding the same bytes fails the same way), except
``not_read``, which is retried. A resume refuses a run made another way (weights, engine,
model, preprocessing, byte or pixel limits), recovers from a write or a ``features/`` swap that
a stopped run left halfway, and marks a classifier trained on the old PCA model stale.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.config import FeaturizeConfig
from featurize.errors import ConfigError
from featurize.inputs.listing import Listing
from featurize.manifest import to_json, utc_now
from featurize.model.backbone import model_name
from featurize.model.engines import check_same_engine
from featurize.model.preprocess import Preprocessing
from featurize.model.weights import ResolvedWeights
from featurize.rundir import (
    ERRORS_COLUMNS, ERRORS_DDL, FEATURES_COLUMNS, FEATURES_DDL, FILE_KEY_DDL, RunDir,
)
from featurize.storage import filesystem

logger = logging.getLogger(__name__)

#: The job whose run directories --resume resumes.
JOB_NAME = "featurize_images"
#: Settings that decide which inputs become errors: a resume must use the run's own.
RESUME_SAME = ("max_file_bytes", "max_pixels")


@dataclass(frozen=True)
class ResumePlan:
    """What ``--resume`` keeps from the run directory it resumes: DataFrames over the old
    tables (never collected) and their counts."""

    previous: dict[str, Any] | None
    #: old ``features/`` rows whose input is listed unchanged (same path, length, time).
    kept_features: DataFrame | None = None
    #: old ``errors/`` rows kept likewise (``not_read`` ones are retried).
    kept_errors: DataFrame | None = None
    n_kept_features: int = 0
    n_kept_errors: int = 0
    kept_by_reason: dict[str, int] = field(default_factory=dict)
    #: rows of the old features/ and errors/ dropped: inputs changed or gone, duplicates.
    dropped: int = 0
    #: ``kept_features`` holds a path twice (the rewrite keeps one).
    duplicates: bool = False
    #: the paths of both (persisted): what this run does not read again.
    done: DataFrame | None = None

    @property
    def n_done(self) -> int:
        return self.n_kept_features + self.n_kept_errors

    def nothing_to_do(self, listing: Listing, config: FeaturizeConfig) -> bool:
        before = (self.previous or {}).get("config", {})
        same_pca = (before.get("pca_k"), before.get("pca_variance")) == (
            config.pca_k, config.pca_variance)
        return (self.previous is not None and self.previous.get("status") == "complete"
                and same_pca and self.dropped == 0 and listing.n_to_read == 0
                and not listing.n_too_large and not listing.empty)

    def to_manifest(self) -> dict[str, Any]:
        return {"kept_features": self.n_kept_features, "kept_errors": self.n_kept_errors,
                "dropped": self.dropped,
                "previous_status": (self.previous or {}).get("status"),
                "previous_started_at": (self.previous or {}).get("started_at")}


def previous_run(spark: SparkSession, config: FeaturizeConfig) -> dict[str, Any] | None:
    """The manifest of the run ``--resume`` resumes (None: nothing there yet).

    Raises
    ------
    ConfigError
        The output holds files but no manifest, or the run used other limits.
    """
    out = config.output
    manifest_uri = RunDir(out).manifest
    if not filesystem.exists(spark, manifest_uri):
        if filesystem.is_nonempty(spark, out):
            raise ConfigError(
                f"--resume {out}: it holds files but no manifest.json, so what made them is "
                f"unknown; use --overwrite to start again, or another --output.")
        logger.info("--resume: nothing at %s yet; featurizing every input", out)
        return None
    previous = json.loads(filesystem.read_text(spark, manifest_uri))
    before = previous.get("config", {})
    for key in RESUME_SAME:
        if key in before and before[key] != getattr(config, key):
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"--resume {out}: that run used {flag} {before[key]}, this one "
                f"{getattr(config, key)}; which inputs are errors would differ. Resume with "
                f"{flag} {before[key]}, or use --overwrite.")
    enc = before.get("encryption")
    if enc is not None and enc != asdict(config.encryption):
        # the kept objects stay as they were written: one run, one encryption
        raise ConfigError(
            f"--resume {out}: that run's objects were written with --sse "
            f"{enc.get('algorithm') or '(bucket default)'}"
            f"{' --sse-kms-key-id ' + enc['kms_key_id'] if enc.get('kms_key_id') else ''}; "
            f"resume with the same, or use --overwrite.")
    return previous


def _check_resumable(previous: dict[str, Any], weights: ResolvedWeights,
                     config: FeaturizeConfig) -> None:
    """The run to resume must have been made the same way, or its features would mix."""
    out = config.output
    checks = [
        ("job", previous.get("job"), JOB_NAME),
        ("model", (previous.get("model") or {}).get("name"), model_name(config.image_size)),
        ("preprocessing", (previous.get("preprocessing") or {}).get("name"),
         Preprocessing.of(config).name),
        ("weights", (previous.get("weights") or {}).get("arrays_sha256"), weights.digest),
    ]
    for what, theirs, ours in checks:
        if theirs != ours:
            raise ConfigError(
                f"--resume {out}: that run was made with another {what} ({theirs!r}, now "
                f"{ours!r}); features from both cannot be mixed. "
                f"{_same_flags(previous) if what == 'preprocessing' else ''}"
                f"Use --overwrite to start again, or another --output.")
    check_same_engine(previous.get("engine"), config.engine, config.precision,
                      f"--resume {out}")


def _same_flags(previous: dict[str, Any]) -> str:
    """The flags that reproduce the old run's preprocessing, when this code can."""
    try:
        pre = Preprocessing.from_manifest(previous.get("preprocessing") or {})
    except ValueError:
        return ""
    if pre.name != (previous.get("preprocessing") or {}).get("name"):
        return ""
    return (f"To add to it, resume with --preprocess {pre.mode} --image-size {pre.size} "
            f"--decode {pre.decode}. ")


def _recover_swap(spark: SparkSession, run_dir: RunDir) -> None:
    """Finish or undo a features/ or errors/ swap that a stopped resume left halfway."""
    for nxt, table in ((run_dir.features_next, run_dir.features),
                       (run_dir.errors_next, run_dir.errors)):
        if not filesystem.exists(spark, nxt):
            continue
        if not filesystem.exists(spark, table) and filesystem.exists(spark, RunDir.committed(nxt)):
            logger.info("--resume: completing the swap of %s that a stopped resume left", table)
            filesystem.rename(spark, nxt, table)
        else:
            filesystem.delete(spark, nxt)


def swap_in(spark: SparkSession, nxt: str, table: str) -> None:
    """Replace ``table`` by the folder written beside it (:func:`_recover_swap` finishes a
    swap stopped between the two steps)."""
    filesystem.delete(spark, table)
    filesystem.rename(spark, nxt, table)


def _old_table(spark: SparkSession, uri: str, ddl: str) -> DataFrame | None:
    """An old table with ``mtime_ms`` beside ``modification_time``; explicit schema, so a
    folder a stopped write left empty is zero rows, not an error."""
    if not filesystem.exists(spark, uri):
        return None
    return spark.read.schema(ddl).parquet(uri).withColumn(
        "mtime_ms", F.expr("unix_millis(modification_time)"))


_KEY = ["path", "length", "mtime_ms"]


def _row_count(table: DataFrame) -> int:
    """Rows of a Parquet table (Spark answers from the files' footers)."""
    return int(table.select().count())


def plan_resume(spark: SparkSession, config: FeaturizeConfig, listing: Listing,
                weights: ResolvedWeights, previous: dict[str, Any] | None) -> ResumePlan:
    """Match what the run directory already holds against the inputs listed now, as
    joins on the executors: old rows semi-joined with the listing on (path, length,
    modification time); only counts reach the driver.

    Raises
    ------
    ConfigError
        The run was made with other weights, model or preprocessing.
    """
    if previous is None:
        return ResumePlan(None)
    run_dir = RunDir(config.output)
    _check_resumable(previous, weights, config)
    _recover_swap(spark, run_dir)
    # A write stopped partway leaves its uncommitted attempts here; they are not rows.
    filesystem.delete(spark, RunDir.uncommitted(run_dir.features))
    filesystem.delete(spark, RunDir.uncommitted(run_dir.errors))
    current = listing.images.select(*_KEY)
    if listing.empty:
        current = current.unionByName(spark.createDataFrame(
            [(r.path, 0, r.mtime_ms) for r in listing.empty], FILE_KEY_DDL))
    old_features = _old_table(spark, run_dir.features, FEATURES_DDL)
    old_errors = _old_table(spark, run_dir.errors, ERRORS_DDL)
    now = current.withColumn("_now", F.lit(True))
    n_old = kept_f = distinct_f = 0
    features = None
    if old_features is not None:
        features = old_features.join(current, _KEY, "left_semi")
        # one job: the old rows, those matching an input now, and their distinct paths
        row = old_features.select(*_KEY).join(now, _KEY, "left").agg(
            F.count(F.lit(1)).alias("old"), F.count("_now").alias("kept"),
            F.countDistinct(F.when(F.col("_now"), F.col("path"))).alias("paths")).first()
        n_old, kept_f, distinct_f = int(row["old"]), int(row["kept"]), int(row["paths"])
    errors = None
    by_reason: dict[str, int] = {}
    if old_errors is not None:
        errors = old_errors.where(F.col("error") != "not_read").join(current, _KEY, "left_semi")
        if features is not None:
            errors = errors.join(features.select("path"), "path", "left_anti")
        errors = errors.dropDuplicates(["path"]).select(*ERRORS_COLUMNS).persist(
            StorageLevel.MEMORY_AND_DISK)
        # one job: the kept rows by reason (it also fills the cache of the kept rows)
        by_reason = {r["error"]: int(r["count"])
                     for r in errors.groupBy("error").count().collect()}
        n_old += _row_count(old_errors)
    kept_e = sum(by_reason.values())
    parts = [t.select("path") for t in (features, errors) if t is not None]
    done = None
    if parts:
        done = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
        done = done.persist(StorageLevel.MEMORY_AND_DISK)
    dropped = n_old - distinct_f - kept_e
    logger.info("--resume: keeping %d features rows and %d errors rows of %s; %d dropped "
                "(inputs changed or gone, or duplicates)", distinct_f, kept_e, config.output,
                dropped)
    return ResumePlan(previous, features, errors, distinct_f, kept_e, by_reason, dropped,
                      duplicates=kept_f != distinct_f, done=done)


def write_features(spark: SparkSession, new: DataFrame | None, run_dir: RunDir,
                   plan: ResumePlan | None) -> bool:
    """Write ``features/``: ``new`` rows, plus the rows a resumed run keeps. Returns True
    when the rows went to ``_features_next/``, for the caller to :func:`swap_in` once
    nothing reads the old table any more (the plan's frames are joins over it).

    A fresh run writes features/ once. A resume appends new part files when every old
    row is kept; when some are dropped (inputs changed or gone), it writes kept + new
    into ``_features_next/``. On a filesystem with atomic rename each
    task's part file lands when the task commits (the v2 commit algorithm), so a run
    stopped partway leaves the features of its finished tasks behind for the next
    ``--resume``; on an object store the write commits as a whole
    (:func:`filesystem.commit_options`).
    """
    uri = run_dir.features
    commit_v2 = filesystem.commit_options(uri)
    if plan is None or plan.kept_features is None or not filesystem.exists(spark, uri):
        if new is None:  # resume of nothing: an empty, typed features/
            new = spark.createDataFrame([], FEATURES_DDL)
        new.write.mode("errorifexists").options(**commit_v2).parquet(uri)
        return False
    if plan.dropped == 0 and not plan.duplicates:
        if new is not None:
            new.write.mode("append").options(**commit_v2).parquet(uri)
        return False
    kept = plan.kept_features.select(*FEATURES_COLUMNS)
    if plan.duplicates:
        kept = kept.dropDuplicates(["path"])
    rows = kept if new is None else kept.unionByName(new)
    nxt = run_dir.features_next
    filesystem.delete(spark, nxt)
    rows.write.mode("errorifexists").parquet(nxt)
    return True


def mark_classifier_stale(spark: SparkSession, run_dir: RunDir, pca_model_id: str) -> bool:
    """After a resume rebuilt PCA: flag ``metrics.json`` of a classifier trained on the
    old PCA model (predict refuses it; ``make train`` clears the flag)."""
    uri = run_dir.metrics
    if not filesystem.exists(spark, uri):
        return False
    metrics = json.loads(filesystem.read_text(spark, uri))
    if metrics.get("pca_model_id") == pca_model_id:
        return False
    metrics["stale"] = {
        "reason": "the run was resumed and its PCA model rebuilt after this classifier was "
                  "trained; train again",
        "at": utc_now(), "pca_model_id_now": pca_model_id}
    filesystem.write_text(spark, uri, to_json(metrics))
    logger.warning("the classifier in %s was trained on the old PCA model: marked stale in "
                   "metrics.json; train again", run_dir.uri)
    return True
