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
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize import storage
from featurize.config import FeaturizeConfig
from featurize.errors import ConfigError
from featurize.inputs import Listing, current_keys
from featurize.manifest import to_json, utc_now
from featurize.model import model_name
from featurize.rundir import ERRORS_DDL, FEATURES_DDL, FILE_KEY_DDL, ErrorRecord, FileKey, RunDir
from featurize.engines import check_same_engine
from featurize.weights import ResolvedWeights

logger = logging.getLogger(__name__)

#: The job whose run directories --resume resumes.
JOB_NAME = "featurize_images"
#: Settings that decide which inputs become errors: a resume must use the run's own.
RESUME_SAME = ("max_file_bytes", "max_pixels")


@dataclass(frozen=True)
class ResumePlan:
    """What ``--resume`` keeps from the run directory it resumes."""

    previous: dict[str, Any] | None
    kept_features: tuple[FileKey, ...] = ()
    kept_errors: tuple[ErrorRecord, ...] = ()
    #: rows of the old features/ and errors/ dropped: inputs changed or gone, duplicates.
    dropped: int = 0

    @property
    def done(self) -> frozenset[str]:
        return frozenset([k.path for k in self.kept_features]
                         + [r.path for r in self.kept_errors])

    def nothing_to_do(self, listing: Listing, config: FeaturizeConfig) -> bool:
        before = (self.previous or {}).get("config", {})
        same_pca = (before.get("pca_k"), before.get("pca_variance")) == (
            config.pca_k, config.pca_variance)
        return (self.previous is not None and self.previous.get("status") == "complete"
                and same_pca and self.dropped == 0 and not listing.to_read
                and not listing.too_large)

    def to_manifest(self) -> dict[str, Any]:
        return {"kept_features": len(self.kept_features), "kept_errors": len(self.kept_errors),
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
    if not storage.exists(spark, manifest_uri):
        if storage.is_nonempty(spark, out):
            raise ConfigError(
                f"--resume {out}: it holds files but no manifest.json, so what made them is "
                f"unknown; use --overwrite to start again, or another --output.")
        logger.info("--resume: nothing at %s yet; featurizing every input", out)
        return None
    previous = json.loads(storage.read_text(spark, manifest_uri))
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
         config.preprocessing.name),
        ("weights", (previous.get("weights") or {}).get("arrays_sha256"), weights.digest),
    ]
    for what, theirs, ours in checks:
        if theirs != ours:
            raise ConfigError(
                f"--resume {out}: that run was made with another {what} ({theirs!r}, now "
                f"{ours!r}); features from both cannot be mixed. Use --overwrite to start "
                f"again, or another --output.")
    check_same_engine(previous.get("engine"), config.engine, config.precision,
                      f"--resume {out}")


def _recover_swap(spark: SparkSession, run_dir: RunDir) -> None:
    """Finish or undo a features/ swap that a stopped resume left halfway."""
    nxt = run_dir.features_next
    if not storage.exists(spark, nxt):
        return
    if not storage.exists(spark, run_dir.features) and storage.exists(
            spark, RunDir.committed(nxt)):
        logger.info("--resume: completing the features/ swap a stopped resume left")
        storage.rename(spark, nxt, run_dir.features)
    else:
        storage.delete(spark, nxt)


def _old_rows(spark: SparkSession, uri: str, ddl: str, columns: list[str]) -> list[Any]:
    """Rows of an old table with ``modification_time`` as ``ms``; explicit schema, so a
    folder a stopped write left empty is zero rows, not an error."""
    if not storage.exists(spark, uri):
        return []
    ms = F.expr("unix_millis(modification_time)").alias("ms")
    return spark.read.schema(ddl).parquet(uri).select(*columns, ms).collect()


def plan_resume(spark: SparkSession, config: FeaturizeConfig, listing: Listing,
                weights: ResolvedWeights, previous: dict[str, Any] | None) -> ResumePlan:
    """Match what the run directory already holds against the inputs listed now.

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
    storage.delete(spark, RunDir.uncommitted(run_dir.features))
    storage.delete(spark, RunDir.uncommitted(run_dir.errors))
    current = current_keys(spark, listing)
    old_features = _old_rows(spark, run_dir.features, FEATURES_DDL, ["path", "length"])
    old_errors = _old_rows(spark, run_dir.errors, ERRORS_DDL,
                           ["path", "label", "length", "error", "detail"])
    seen: set[str] = set()
    kept_features = []
    for r in old_features:
        if r["path"] not in seen and current.get(r["path"]) == (r["length"], r["ms"]):
            kept_features.append(FileKey(r["path"], int(r["length"]), int(r["ms"])))
            seen.add(r["path"])
    kept_errors = []
    for r in old_errors:
        if (r["path"] not in seen and r["error"] != "not_read"
                and current.get(r["path"]) == (r["length"], r["ms"])):
            kept_errors.append(ErrorRecord(r["path"], r["label"], int(r["length"]),
                                           int(r["ms"]), r["error"], r["detail"]))
            seen.add(r["path"])
    dropped = len(old_features) + len(old_errors) - len(kept_features) - len(kept_errors)
    logger.info("--resume: keeping %d features rows and %d errors rows of %s; %d dropped "
                "(inputs changed or gone); %d inputs to read", len(kept_features),
                len(kept_errors), config.output, dropped, len(listing.listed - seen))
    return ResumePlan(previous, tuple(kept_features), tuple(kept_errors), dropped)


def write_features(spark: SparkSession, new: DataFrame | None, run_dir: RunDir,
                   plan: ResumePlan | None) -> None:
    """Write ``features/``: ``new`` rows, plus the rows a resumed run keeps.

    A fresh run writes features/ once. A resume appends new part files when every old
    row is kept; when some are dropped (inputs changed or gone), it writes kept + new
    into ``_features_next/`` and swaps it in. On a filesystem with atomic rename each
    task's part file lands when the task commits (the v2 commit algorithm), so a run
    stopped partway leaves the features of its finished tasks behind for the next
    ``--resume``; on an object store the write commits as a whole
    (:func:`storage.commit_options`).
    """
    uri = run_dir.features
    commit_v2 = storage.commit_options(uri)
    if plan is None or not storage.exists(spark, uri):
        if new is None:  # resume of nothing: an empty, typed features/
            new = spark.createDataFrame([], FEATURES_DDL)
        new.write.mode("errorifexists").options(**commit_v2).parquet(uri)
        return
    if plan.dropped == 0:
        if new is not None:
            new.write.mode("append").options(**commit_v2).parquet(uri)
        return
    keys = spark.createDataFrame(list(plan.kept_features), FILE_KEY_DDL)
    old = spark.read.schema(FEATURES_DDL).parquet(uri)
    kept = old.join(keys, (old["path"] == keys["path"]) & (old["length"] == keys["length"])
                    & (F.expr("unix_millis(modification_time)") == keys["mtime_ms"]),
                    "left_semi")
    rows = kept if new is None else kept.unionByName(new)
    nxt = run_dir.features_next
    storage.delete(spark, nxt)
    rows.write.mode("errorifexists").parquet(nxt)
    storage.delete(spark, uri)
    storage.rename(spark, nxt, uri)


def mark_classifier_stale(spark: SparkSession, run_dir: RunDir, pca_model_id: str) -> bool:
    """After a resume rebuilt PCA: flag ``metrics.json`` of a classifier trained on the
    old PCA model (predict refuses it; ``make train`` clears the flag)."""
    uri = run_dir.metrics
    if not storage.exists(spark, uri):
        return False
    metrics = json.loads(storage.read_text(spark, uri))
    if metrics.get("pca_model_id") == pca_model_id:
        return False
    metrics["stale"] = {
        "reason": "the run was resumed and its PCA model rebuilt after this classifier was "
                  "trained; train again",
        "at": utc_now(), "pca_model_id_now": pca_model_id}
    storage.write_text(spark, uri, to_json(metrics))
    logger.warning("the classifier in %s was trained on the old PCA model: marked stale in "
                   "metrics.json; train again", run_dir.uri)
    return True
