"""The featurize job: images → features/, errors/, pca/, models/pca/, manifest.json.

:func:`run` takes an injected SparkSession and a :class:`FeaturizeConfig`; the
``jobs/featurize_images.py`` entry point only parses flags and calls it.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize import storage
from featurize.config import ConfigError, FeaturizeConfig
from featurize.images import PREPROCESSING, IMAGE_SIZE
from featurize.manifest import (
    FORMAT_VERSION, MANIFEST_NAME, StageTimer, command_line, library_versions, to_json,
    utc_now,
)
from featurize.model import FEATURE_DIM, MODEL_NAME
from featurize.pipeline import (
    apply_featurizer, error_rows, features_rows, label_column, listed_paths, plan_partitions,
    read_images, with_labels,
)
from featurize.reduce import fit_reducer, project
from featurize.udf import make_featurize_udf
from featurize.weights import ResolvedWeights, resolve_weights

logger = logging.getLogger(__name__)

JOB_NAME = "featurize_images"


class JobError(RuntimeError):
    """The job stopped; the message says why and what to do."""


@contextmanager
def sql_conf(spark: SparkSession, values: dict[str, str]) -> Iterator[None]:
    """Set session SQL confs for a block, then restore them."""
    old = {k: spark.conf.get(k, None) for k in values}
    for k, v in values.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def check_output(spark: SparkSession, config: FeaturizeConfig) -> None:
    """Refuse a non-empty run directory unless ``--overwrite`` (checked before any work)."""
    if not config.overwrite and storage.is_nonempty(spark, config.output):
        raise ConfigError(
            f"--output {config.output} already exists and is not empty; pass "
            f"--overwrite to replace it, or choose another --output."
        )


def check_input(spark: SparkSession, config: FeaturizeConfig) -> None:
    if not storage.is_directory(spark, config.input):
        raise ConfigError(
            f"--input {config.input} is not a folder (or does not exist); give the folder "
            f"that holds the images (<label>/<file>.jpg)."
        )


def count_inputs(images: DataFrame) -> tuple[int, int]:
    """(files, total bytes) of the listing; reads metadata only, not the content."""
    row = images.agg(F.count(F.lit(1)).alias("n"), F.sum("length").alias("bytes")).first()
    return int(row["n"]), int(row["bytes"] or 0)


def unscanned_rows(
    spark: SparkSession, images: DataFrame, listed: set[str], n_scanned: int, root: str
) -> DataFrame:
    """``errors/`` rows for listed files the ``binaryFile`` scan skipped (0-byte files).

    Only when the counts differ are the scanned paths collected and the few missing
    files stat-ed on the driver.
    """
    schema = "path string, length long, mtime_ms long, error string, detail string"
    rows: list[tuple[str, int, int, str, str]] = []
    if n_scanned != len(listed):
        scanned = {r["path"] for r in images.select("path").collect()}
        for path in sorted(listed - scanned):
            length, mtime_ms = storage.stat(spark, path)
            if length == 0:
                rows.append((path, 0, mtime_ms, "empty", "file has 0 bytes"))
            else:
                rows.append((path, length, mtime_ms, "not_read",
                             "listed but not returned by the reader (changed during the run?)"))
    return spark.createDataFrame(rows, schema).select(
        "path", label_column(F.col("path"), root).alias("label"), "length",
        F.expr("timestamp_millis(mtime_ms)").alias("modification_time"), "error", "detail",
    )


@dataclass(frozen=True)
class Listing:
    """What is under ``--input``, known before any content is read."""

    root: str
    images: DataFrame
    n_inputs: int
    n_scanned: int
    n_bytes: int
    unscanned: DataFrame


def list_inputs(spark: SparkSession, config: FeaturizeConfig) -> Listing:
    """List and count the inputs (metadata only) and check the config against them.

    Raises
    ------
    ConfigError
        No matching files, or ``--pca-k`` larger than the number of inputs.
    """
    root = storage.qualify(spark, config.input)
    images = read_images(spark, config.input, config.extensions)
    listed = listed_paths(images)
    n_scanned, n_bytes = count_inputs(images)
    n_inputs = len(listed)
    if n_inputs == 0:
        raise ConfigError(
            f"--input {config.input} holds no files ending in "
            f"{', '.join('.' + e for e in config.extensions)} (any letter case)."
        )
    if config.pca_k is not None and config.pca_k > n_inputs:
        raise ConfigError(
            f"--pca-k {config.pca_k} is larger than the {n_inputs} input images; lower "
            f"--pca-k or add images."
        )
    unscanned = unscanned_rows(spark, images, listed, n_scanned, root)
    return Listing(root, images, n_inputs, n_scanned, n_bytes, unscanned)


def task_cpus(spark: SparkSession) -> int:
    return int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))


def run(spark: SparkSession, config: FeaturizeConfig) -> dict[str, Any]:
    """Run the featurize job; returns the manifest written to ``output/manifest.json``.

    Raises
    ------
    ConfigError
        Bad configuration, before any Spark work (no manifest written).
    WeightsError
        The weights cannot be resolved (no manifest written).
    JobError, ReducerError, Exception
        After work began: a manifest with ``status: failed`` is written, then re-raised.
    """
    started = utc_now()
    timer = StageTimer()
    storage.check_scheme(spark, config.input, "--input")
    storage.check_scheme(spark, config.output, "--output")
    check_input(spark, config)
    check_output(spark, config)
    with timer.stage("list_inputs"):
        listing = list_inputs(spark, config)
    with timer.stage("resolve_weights"):
        weights = resolve_weights(config.weights, seed=config.seed)

    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "job": JOB_NAME,
        "status": "running",
        "started_at": started,
        "finished_at": None,
        "config": config.to_dict(),
        "command": command_line(),
        "versions": library_versions(),
        "spark": {
            "version": spark.version,
            "master": spark.sparkContext.master,
            "app_id": spark.sparkContext.applicationId,
            "default_parallelism": spark.sparkContext.defaultParallelism,
        },
        "weights": weights.to_manifest(),
        "model": {"name": MODEL_NAME, "feature_dim": FEATURE_DIM,
                  "batch_size": config.batch_size},
        "preprocessing": {"name": PREPROCESSING, "image_size": list(IMAGE_SIZE),
                          "resample": "bilinear"},
        "input": {"uri": config.input, "root": listing.root},
        "counts": {"inputs": listing.n_inputs, "input_bytes": listing.n_bytes},
        "pca": None,
        "timings_seconds": timer.seconds,
        "images_per_second": {},
        "outputs": {"features": "features/", "errors": "errors/", "pca": "pca/",
                    "pca_model": "models/pca/"},
    }
    if config.overwrite:
        storage.delete(spark, config.output)
    try:
        _run(spark, config, listing, weights, timer, manifest)
    except BaseException as exc:
        manifest["status"] = "failed"
        # First line only: Py4J errors carry whole JVM stack traces (they are in the log).
        first_line = (str(exc).strip().splitlines() or [""])[0][:1000]
        manifest["error"] = f"{type(exc).__name__}: {first_line}"
        manifest["finished_at"] = utc_now()
        manifest["timings_seconds"]["total"] = timer.total()
        try:
            storage.write_text(spark, storage.join(config.output, MANIFEST_NAME), to_json(manifest))
        except Exception:  # noqa: BLE001 - never mask the original failure
            logger.exception("could not write the failed manifest")
        raise
    return manifest


def _run(
    spark: SparkSession,
    config: FeaturizeConfig,
    listing: Listing,
    weights: ResolvedWeights,
    timer: StageTimer,
    manifest: dict[str, Any],
) -> None:
    sc = spark.sparkContext
    out = config.output
    root, n_scanned, n_bytes = listing.root, listing.n_scanned, listing.n_bytes
    n_inputs, unscanned = listing.n_inputs, listing.unscanned

    threads = config.tf_threads or task_cpus(spark)
    cap = config.files_per_partition or 16 * config.batch_size
    plan = plan_partitions(n_scanned, n_bytes, sc.defaultParallelism, cap)
    manifest["spark"]["partitions_planned"] = plan.partitions
    manifest["spark"]["tf_threads_per_task"] = threads

    broadcast = sc.broadcast(weights.arrays)
    counter = sc.accumulator(0)
    featurizer = make_featurize_udf(
        broadcast, weights.digest, config.batch_size, threads,
        max_pixels=config.max_pixels, images_counter=counter,
    )
    confs = {
        "spark.sql.files.maxPartitionBytes": str(plan.max_partition_bytes),
        # One Arrow batch = one model batch: memory per worker stays flat.
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(config.batch_size),
    }
    labelled = with_labels(read_images(spark, config.input, config.extensions), root)
    featurized = apply_featurizer(labelled, featurizer(F.col("content")))
    # Persisted so features/ and errors/ come from one CNN pass.
    featurized = featurized.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with timer.stage("featurize"), sql_conf(spark, confs):
            features_rows(featurized).write.mode("errorifexists").parquet(
                storage.join(out, "features"))
            error_rows(featurized).unionByName(unscanned).coalesce(1).write.mode(
                "errorifexists").parquet(storage.join(out, "errors"))
            by_reason = {
                r["error"]: int(r["count"])
                for r in featurized.groupBy(F.col("result.error").alias("error")).count().collect()
            }
            for r in unscanned.groupBy("error").count().collect():
                by_reason[r["error"]] = by_reason.get(r["error"], 0) + int(r["count"])
        manifest["spark"]["partitions_used"] = featurized.rdd.getNumPartitions()
    finally:
        featurized.unpersist()
        broadcast.unpersist()

    n_ok = by_reason.pop(None, 0)
    n_failed = sum(by_reason.values())
    manifest["counts"].update({
        "featurized": n_ok,
        "failed": n_failed,
        "failed_by_reason": dict(sorted(by_reason.items())),
        "model_images": int(counter.value),
    })
    if n_ok + n_failed != n_inputs:
        raise JobError(
            f"{n_inputs} inputs were listed but {n_ok} featurized + {n_failed} failed were "
            f"written; the input changed during the run? Rerun with --overwrite."
        )
    feat_seconds = timer.seconds["featurize"]
    manifest["images_per_second"]["featurize"] = round(n_inputs / feat_seconds, 2)

    # PCA passes read the materialised parquet, never the CNN again.
    features = spark.read.parquet(storage.join(out, "features"))
    with timer.stage("pca_fit"):
        model, summary = fit_reducer(
            features, n_ok, k=config.pca_k,
            variance=None if config.pca_k is not None else config.pca_variance,
        )
    manifest["pca"] = summary.to_manifest()
    with timer.stage("pca_write"):
        project(model, features).write.mode("errorifexists").parquet(storage.join(out, "pca"))
        model.write().save(storage.join(out, "models", "pca"))

    manifest["status"] = "complete"
    manifest["finished_at"] = utc_now()
    total = timer.total()
    manifest["timings_seconds"]["total"] = total
    manifest["images_per_second"]["end_to_end"] = round(n_inputs / total, 2)
    storage.write_text(spark, storage.join(out, MANIFEST_NAME), to_json(manifest))
    logger.info(
        "run complete: %d inputs, %d featurized, %d failed, PCA k=%d, %.1f images/s",
        n_inputs, n_ok, n_failed, summary.k, manifest["images_per_second"]["end_to_end"],
    )
