"""The featurize job: images → features/, errors/, pca/, models/pca/, manifest.json.

:func:`run` takes an injected SparkSession and a :class:`FeaturizeConfig`; the
``jobs/featurize_images.py`` entry point only parses flags and calls it.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from featurize import s3, storage
from featurize.config import DEFAULT_FILES_PER_PARTITION, ConfigError, FeaturizeConfig
from featurize.images import ERROR_REASONS, IMAGE_SIZE, PREPROCESSING
from featurize.output import RunOutput
from featurize.manifest import (
    FORMAT_VERSION, MANIFEST_NAME, StageTimer, command_line, library_versions, to_json,
    utc_now,
)
from featurize.model import FEATURE_DIM, MODEL_NAME
from featurize.pipeline import (
    apply_featurizer, error_rows, features_rows, label_column, listed_bytes, listed_paths,
    plan_partitions, read_images, with_labels,
)
from featurize.reduce import fit_reducer, model_fingerprint, project
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


def check_input(spark: SparkSession, config: FeaturizeConfig) -> None:
    if not storage.is_directory(spark, config.input):
        raise ConfigError(
            f"--input {config.input} is not a folder (or does not exist); give the folder "
            f"that holds the images (<label>/<file>.jpg)."
        )


UNSCANNED_SCHEMA = "path string, length long, mtime_ms long, error string, detail string"


def unscanned_files(
    spark: SparkSession, scanned_df: DataFrame, listed: frozenset[str], n_scanned: int,
) -> list[tuple[str, int, int, str, str]]:
    """Listed files the ``binaryFile`` scan skipped (0-byte files), as error tuples.

    Only when the counts differ are the scanned paths collected (from the persisted
    result) and the few missing files stat-ed on the driver.
    """
    rows: list[tuple[str, int, int, str, str]] = []
    if n_scanned == len(listed):
        return rows
    scanned = {r["path"] for r in scanned_df.select("path").collect()}
    for path in sorted(listed - scanned):
        length, mtime_ms = storage.stat(spark, path)
        if length == 0:
            rows.append((path, 0, mtime_ms, "empty", "file has 0 bytes"))
        else:
            rows.append((path, length, mtime_ms, "not_read",
                         "listed but not returned by the reader (changed during the run?)"))
    return rows


def unscanned_frame(
    spark: SparkSession, rows: list[tuple[str, int, int, str, str]], root: str
) -> DataFrame:
    """:func:`unscanned_files` tuples in the ``errors/`` schema."""
    return spark.createDataFrame(rows, UNSCANNED_SCHEMA).select(
        "path", label_column(F.col("path"), root).alias("label"), "length",
        F.expr("timestamp_millis(mtime_ms)").alias("modification_time"), "error", "detail",
    )


def outcome_counts(featurized: DataFrame, name: str) -> tuple[DataFrame, Observation]:
    """Attach per-outcome row counts, computed by whichever action runs first.

    ``observe`` metrics come from successful task attempts only, so retries do not
    double count, and they cost no extra pass over the data.
    """
    observation = Observation(name)
    error = F.col("result.error")
    metrics = [F.count(F.lit(1)).alias("rows"),
               F.count_if(error.isNull()).alias("featurized")]
    metrics += [F.count_if(error == F.lit(r)).alias(r) for r in ERROR_REASONS]
    return featurized.observe(observation, *metrics), observation


@dataclass(frozen=True)
class Listing:
    """What is under ``--input``, known before any content is read."""

    root: str
    listed: frozenset[str]
    n_bytes: int
    #: (path, size, mtime_ms) per object when listed with boto3, else None (Spark lists).
    objects: tuple[tuple[str, int, int], ...] | None = None

    @property
    def n_inputs(self) -> int:
        return len(self.listed)


def list_inputs(spark: SparkSession, config: FeaturizeConfig, mode: str = "spark") -> Listing:
    """List the inputs on the driver and check the configuration against them.

    ``mode`` ``spark``: the ``binaryFile`` reader's file index (metadata, no Spark job).
    ``boto3``: a paginated S3 listing, for S3 where this Spark has no filesystem.

    Raises
    ------
    ConfigError
        No matching files, or ``--pca-k`` larger than the number of inputs.
    """
    exts = ", ".join("." + e for e in config.extensions)
    objects = None
    if mode == "boto3":
        client = s3.client()
        objects = tuple(s3.list_images(client, config.input, config.extensions))
        if not objects and s3.prefix_is_empty(client, config.input):
            raise ConfigError(f"--input {config.input}: there are no objects under this "
                              f"prefix; check the bucket and prefix.")
        root = s3.S3Uri.parse(config.input).root
        listed = frozenset(o[0] for o in objects)
        n_bytes = sum(o[1] for o in objects)
    else:
        root = storage.qualify(spark, config.input)
        images = read_images(spark, config.input, config.extensions)
        listed = frozenset(listed_paths(images))
        n_bytes = listed_bytes(images) if listed else 0
    if not listed:
        raise ConfigError(
            f"--input {config.input} holds no files ending in {exts} (any letter case).")
    if config.pca_k is not None and config.pca_k > len(listed):
        raise ConfigError(
            f"--pca-k {config.pca_k} is larger than the {len(listed)} input images; lower "
            f"--pca-k or add images."
        )
    return Listing(root, listed, n_bytes, objects)


def start_warm_up(spark: SparkSession, batch_size: int, threads: int) -> threading.Thread:
    """Prepare the Python workers (TensorFlow import, model build, trace) in the background.

    One task per core, run while the driver lists inputs and resolves weights; with
    worker reuse the UDF's tasks then find warm workers. A failure here is logged only:
    the UDF builds what it needs itself.
    """
    sc = spark.sparkContext
    n = max(sc.defaultParallelism, 1)

    def warm(batches: Iterator[Any]) -> Iterator[Any]:
        from featurize import model as model_cache

        model_cache.warm_up(batch_size, threads)
        yield from batches

    def job() -> None:
        try:
            sc.setJobDescription("featurize: warm up Python workers")
            # A pandas (Arrow) job, not an RDD one: Spark keeps separate Python worker
            # pools for the two, and the UDF runs in the Arrow pool.
            spark.range(0, n, numPartitions=n).mapInPandas(warm, "id long").collect()
        except Exception:  # noqa: BLE001 - an optimisation must never fail the run
            logger.warning("worker warm-up failed; workers will build the model on demand",
                           exc_info=True)

    thread = threading.Thread(target=job, name="featurize-warm-up", daemon=True)
    thread.start()
    return thread


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
    in_mode = storage.io_mode(spark, config.input, "--input")
    output = RunOutput(spark, config.output, config.overwrite)
    if in_mode == "spark":
        check_input(spark, config)
    output.check()
    threads = config.tf_threads or task_cpus(spark)
    # Workers import TensorFlow, build and trace the model while the driver lists the
    # inputs and resolves the weights (both driver-side, no Spark job).
    warming = start_warm_up(spark, config.batch_size, threads)
    with timer.stage("list_inputs"):
        listing = list_inputs(spark, config, in_mode)
    with timer.stage("resolve_weights"):
        weights = resolve_weights(config.weights, seed=config.seed)
    logger.info("input read by %s, output written by %s", in_mode, output.mode)

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
        "io": {"input": in_mode, "output": output.mode},
        "counts": {"inputs": listing.n_inputs, "input_bytes": listing.n_bytes},
        "pca": None,
        "timings_seconds": timer.seconds,
        "images_per_second": {},
        "outputs": {"features": "features/", "errors": "errors/", "pca": "pca/",
                    "pca_model": "models/pca/"},
    }
    output.prepare()
    staged = replace(config, output=output.write_uri)
    try:
        _run(spark, staged, listing, weights, threads, warming, timer, manifest)
    except BaseException as exc:
        manifest["status"] = "failed"
        # First line only: Py4J errors carry whole JVM stack traces (they are in the log).
        first_line = (str(exc).strip().splitlines() or [""])[0][:1000]
        manifest["error"] = f"{type(exc).__name__}: {first_line}"
        manifest["finished_at"] = utc_now()
        manifest["timings_seconds"]["total"] = timer.total()
        try:
            storage.write_text(spark, storage.join(staged.output, MANIFEST_NAME), to_json(manifest))
            output.publish()
        except Exception:  # noqa: BLE001 - never mask the original failure
            logger.exception("could not write the failed manifest")
        raise
    output.publish()
    return manifest


@dataclass
class Featurized:
    """The persisted UDF output of one featurization pass, and what goes with it.

    Run the first action on ``observed`` inside ``confs()``; then call
    :func:`write_errors`; always :meth:`release`.
    """

    spark: SparkSession
    frame: DataFrame
    observed: DataFrame
    observation: Observation
    broadcast: Any
    counter: Any
    conf_values: dict[str, str]

    def confs(self) -> Any:
        return sql_conf(self.spark, self.conf_values)

    def release(self) -> None:
        self.frame.unpersist()
        self.broadcast.unpersist()


def featurize_inputs(
    spark: SparkSession,
    config: FeaturizeConfig,
    listing: Listing,
    weights: ResolvedWeights,
    threads: int,
    warming: threading.Thread,
    timer: StageTimer,
    manifest: dict[str, Any],
) -> Featurized:
    """Plan partitions, broadcast the weights and persist the UDF's output (lazily).

    Shared by the featurize and predict jobs: the CNN runs once per image, at the first
    action on ``observed``.
    """
    sc = spark.sparkContext
    cap = config.files_per_partition or DEFAULT_FILES_PER_PARTITION
    plan = plan_partitions(listing.n_inputs, listing.n_bytes, sc.defaultParallelism, cap)
    manifest.setdefault("spark", {}).update(
        {"partitions_planned": plan.partitions, "tf_threads_per_task": threads})
    broadcast = sc.broadcast(weights.arrays)
    counter = sc.accumulator(0)
    featurizer = make_featurize_udf(
        broadcast, weights.digest, config.batch_size, threads,
        max_pixels=config.max_pixels, images_counter=counter,
    )
    conf_values = {
        "spark.sql.files.maxPartitionBytes": str(plan.max_partition_bytes),
        # One Arrow batch = one model batch: memory per worker stays flat.
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(config.batch_size),
    }
    if listing.objects is None:
        images = read_images(spark, config.input, config.extensions)
    else:
        images = s3.read_images(spark, listing.objects, plan.partitions)
    labelled = with_labels(images, listing.root)
    with timer.stage("wait_warm_up"):
        warming.join()
    with sql_conf(spark, conf_values):
        # Persisted so every output comes from one CNN pass. persist() plans the
        # query, so it must happen while the partitioning and Arrow confs are set.
        frame = apply_featurizer(labelled, featurizer(F.col("content"))).persist(
            StorageLevel.MEMORY_AND_DISK)
    observed, observation = outcome_counts(frame, "featurize_outcomes")
    return Featurized(spark, frame, observed, observation, broadcast, counter, conf_values)


def write_errors(
    spark: SparkSession, fz: Featurized, listing: Listing, errors_uri: str
) -> dict[str | None, int]:
    """Write ``errors/`` (decode failures + unscanned files); returns counts by reason.

    The ``None`` key counts the featurized rows. Call after the first action.
    """
    metrics = fz.observation.get
    by_reason: dict[str | None, int] = {r: int(metrics[r]) for r in ERROR_REASONS if metrics[r]}
    by_reason[None] = int(metrics["featurized"])
    if int(metrics["rows"]) != sum(by_reason.values()):
        raise JobError(f"unknown error reason among {metrics}")
    missing = unscanned_files(spark, fz.frame, listing.listed, int(metrics["rows"]))
    for row in missing:
        by_reason[row[3]] = by_reason.get(row[3], 0) + 1
    errors = error_rows(fz.frame)
    if missing:
        errors = errors.unionByName(unscanned_frame(spark, missing, listing.root))
    errors.coalesce(1).write.mode("errorifexists").parquet(errors_uri)
    return by_reason


def _run(
    spark: SparkSession,
    config: FeaturizeConfig,
    listing: Listing,
    weights: ResolvedWeights,
    threads: int,
    warming: threading.Thread,
    timer: StageTimer,
    manifest: dict[str, Any],
) -> None:
    out = config.output
    n_inputs = listing.n_inputs
    fz = featurize_inputs(spark, config, listing, weights, threads, warming, timer, manifest)
    try:
        with timer.stage("featurize"), fz.confs():
            features_rows(fz.observed).write.mode("errorifexists").parquet(
                storage.join(out, "features"))
        with timer.stage("errors_write"):
            by_reason = write_errors(spark, fz, listing, storage.join(out, "errors"))
        manifest["spark"]["partitions_used"] = fz.frame.rdd.getNumPartitions()
    finally:
        fz.release()

    n_ok = by_reason.pop(None, 0)
    n_failed = sum(by_reason.values())
    manifest["counts"].update({
        "featurized": n_ok,
        "failed": n_failed,
        "failed_by_reason": dict(sorted(by_reason.items())),
        "model_images": int(fz.counter.value),
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
    manifest["pca"] = {**summary.to_manifest(), "model_id": model_fingerprint(model)}
    with timer.stage("pca_write"):
        # The model save is several small Spark jobs; run them beside the projection.
        with ThreadPoolExecutor(max_workers=1) as saver:  # waits for the save on any exit
            saved = saver.submit(model.write().save, storage.join(out, "models", "pca"))
            project(model, features).write.mode("errorifexists").parquet(
                storage.join(out, "pca"))
            saved.result()

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
