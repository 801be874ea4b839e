"""The featurize job: images → features/, errors/, pca/, models/pca/, manifest.json.

:func:`run` takes an injected SparkSession and a :class:`FeaturizeConfig`; the
``jobs/featurize_images.py`` entry point only parses flags and calls it.
"""
from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
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
    plan_partitions, read_images, spark_path, with_labels,
)
from featurize.reduce import fit_reducer, model_fingerprint, project
from featurize.udf import make_featurize_udf
from featurize.weights import ResolvedWeights, resolve_weights

logger = logging.getLogger(__name__)

JOB_NAME = "featurize_images"

#: Hadoop conf for the features/ write: with the v2 commit algorithm each task's part
#: file lands in features/ when the task commits, so a run stopped partway leaves the
#: features of its finished tasks behind for --resume (the write's _temporary/ holds the
#: rest and is ignored by readers).
COMMIT_V2 = {"mapreduce.fileoutputcommitter.algorithm.version": "2"}

FEATURES_DDL = ("path string, label string, length long, modification_time timestamp, "
                "features array<float>")
ERRORS_COLUMNS = ("path", "label", "length", "modification_time", "error", "detail")
ERRORS_DDL = ("path string, label string, length long, modification_time timestamp, "
              "error string, detail string")


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
    """Files of ``listed`` (the ones meant to be read) that the ``binaryFile`` scan
    skipped (0-byte files), as error tuples.

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
    #: Files the extension filter left out, by lower-case extension.
    skipped: dict[str, int] = field(default_factory=dict)
    #: Files over --max-file-bytes, as ``errors/`` tuples (path, length, mtime_ms,
    #: "too_large", detail); their content is never read.
    too_large: tuple[tuple[str, int, int, str, str], ...] = ()
    #: Inputs whose features --resume keeps from the existing run.
    done: frozenset[str] = frozenset()

    @property
    def n_inputs(self) -> int:
        return len(self.listed)

    @cached_property  # a frozen dataclass keeps it: derived from fields set once
    def to_read(self) -> frozenset[str]:
        """The inputs this run reads and featurizes."""
        return self.listed - self.done - {t[0] for t in self.too_large}


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
    skipped: dict[str, int] = {}
    too_large: list[tuple[str, int, int, str, str]] = []
    if mode == "boto3":
        client = s3.client()
        objects = tuple(s3.list_images(client, config.input, config.extensions, skipped))
        if not objects and not skipped and s3.prefix_is_empty(client, config.input):
            raise ConfigError(f"--input {config.input}: there are no objects under this "
                              f"prefix; check the bucket and prefix.")
        root = s3.S3Uri.parse(config.input).root
        listed = frozenset(o[0] for o in objects)
        n_bytes = sum(o[1] for o in objects)
        too_large = [_too_large(config, *o) for o in objects if o[1] > config.file_byte_limit]
    else:
        root = storage.qualify(spark, config.input)
        images = read_images(spark, config.input, config.extensions)
        listed = frozenset(listed_paths(images))
        n_bytes = listed_bytes(images) if listed else 0
        skipped = skipped_by_extension(spark, config.input, listed)
    if skipped:
        logger.warning(
            "not read because of their extension (add them with --extensions if they are "
            "images Pillow can decode): %s",
            ", ".join(f"{n} {e}" for e, n in sorted(skipped.items())))
    if not listed:
        other = (f"; it holds {sum(skipped.values())} other file(s): "
                 + ", ".join(f"{n} {e}" for e, n in sorted(skipped.items()))) if skipped else ""
        raise ConfigError(
            f"--input {config.input} holds no files ending in {exts} (any letter case)"
            f"{other}.")
    if config.pca_k is not None and config.pca_k > len(listed):
        raise ConfigError(
            f"--pca-k {config.pca_k} is larger than the {len(listed)} input images; lower "
            f"--pca-k or add images."
        )
    return Listing(root, listed, n_bytes, objects, skipped, tuple(sorted(too_large)))


def _too_large(config: FeaturizeConfig, path: str, length: int,
               mtime_ms: int) -> tuple[str, int, int, str, str]:
    limit = config.file_byte_limit
    why = (f"more than --max-file-bytes {config.max_file_bytes}" if config.max_file_bytes
           and config.max_file_bytes <= limit
           else f"more than Spark's binaryFile reader can hold ({limit} bytes)")
    return (path, length, mtime_ms, "too_large", f"{length} bytes is {why}; not read")


def find_too_large(spark: SparkSession, config: FeaturizeConfig,
                   listing: Listing) -> tuple[tuple[str, int, int, str, str], ...]:
    """Inputs over the byte limit, as ``errors/`` tuples; their content is never read.

    With Spark's filesystem: a metadata-only scan (without the content column
    ``binaryFile`` reads no bytes), skipped when all inputs together are under the
    limit. With boto3 the listing already has the sizes.
    """
    limit = config.file_byte_limit
    found = listing.too_large
    if listing.objects is None and listing.n_bytes > limit:
        big = (read_images(spark, config.input, config.extensions)
               .where(F.col("length") > limit)
               .select("path", "length", F.expr("unix_millis(modificationTime)").alias("ms"))
               .collect())
        found = tuple(sorted(_too_large(config, r["path"], int(r["length"]), int(r["ms"]))
                             for r in big))
    found = tuple(t for t in found if t[0] not in listing.done)
    if found:
        logger.warning("%d file(s) over the byte limit go to errors/ as too_large, unread",
                       len(found))
    return found


def skipped_by_extension(spark: SparkSession, input_uri: str,
                         listed: frozenset[str]) -> dict[str, int]:
    """Files under ``input_uri`` that the extension filter leaves out, by extension.

    A second look at the file index, without the extension glob (driver-side metadata,
    no Spark job); hidden names are skipped as Spark skips them.
    """
    every = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
             .load(input_uri).inputFiles())
    counts: dict[str, int] = {}
    for uri in every:
        path = spark_path(uri)
        if path not in listed:
            ext = s3.extension_of(path)
            counts[ext] = counts.get(ext, 0) + 1
    return counts


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
    output = RunOutput(spark, config.output, config.overwrite, config.resume)
    if in_mode == "spark":
        check_input(spark, config)
    output.check()
    # Configuration checks that need no Spark job come first: the listing (the file
    # index is driver-side metadata) and what --resume would resume.
    with timer.stage("list_inputs"):
        listing = list_inputs(spark, config, in_mode)
    previous = previous_run(spark, config) if config.resume else None
    threads = config.tf_threads or task_cpus(spark)
    # Workers import TensorFlow, build and trace the model while the driver resolves
    # the weights.
    warming = start_warm_up(spark, config.batch_size, threads)
    with timer.stage("resolve_weights"):
        weights = resolve_weights(config.weights, seed=config.seed)
    logger.info("input read by %s, output written by %s", in_mode, output.mode)
    plan: ResumePlan | None = None
    if config.resume:
        with timer.stage("plan_resume"):
            plan = plan_resume(spark, config, listing, weights, previous)
        listing = replace(listing, done=plan.done)
    listing = replace(listing, too_large=find_too_large(spark, config, listing))
    if plan is not None:
        if plan.nothing_to_do(listing, config):
            logger.info("--resume: %s already holds every input (%d featurized, %d failed) "
                        "and nothing changed; nothing to do", config.output,
                        len(plan.kept_features), len(plan.kept_errors))
            return plan.previous

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
        "counts": {"inputs": listing.n_inputs, "input_bytes": listing.n_bytes,
                   "skipped_by_extension": dict(sorted(listing.skipped.items()))},
        "pca": None,
        "resume": plan.to_manifest() if plan else None,
        "timings_seconds": timer.seconds,
        "images_per_second": {},
        "outputs": {"features": "features/", "errors": "errors/", "pca": "pca/",
                    "pca_model": "models/pca/"},
    }
    output.prepare()
    staged = replace(config, output=output.write_uri)
    manifest_uri = storage.join(staged.output, MANIFEST_NAME)
    try:
        # First of all, a manifest that says "running": a run stopped at any point
        # after this never looks complete (and --resume knows what made its features).
        storage.write_text(spark, manifest_uri, to_json(manifest))
        _run(spark, staged, listing, weights, threads, warming, timer, manifest, plan)
    except BaseException as exc:
        manifest["status"] = "failed"
        # First line only: Py4J errors carry whole JVM stack traces (they are in the log).
        first_line = (str(exc).strip().splitlines() or [""])[0][:1000]
        manifest["error"] = f"{type(exc).__name__}: {first_line}"
        manifest["finished_at"] = utc_now()
        manifest["timings_seconds"]["total"] = timer.total()
        try:
            storage.write_text(spark, manifest_uri, to_json(manifest))
            output.publish()
        except Exception:  # noqa: BLE001 - never mask the original failure
            logger.exception("could not write the failed manifest")
        raise
    output.publish()
    return manifest


@dataclass(frozen=True)
class ResumePlan:
    """What ``--resume`` keeps from the run directory it resumes.

    Rows are kept when their ``(path, length, modification_time)`` matches an input
    listed now; error rows are kept too (decoding the same bytes fails the same way),
    except ``not_read``, which is retried.
    """

    previous: dict[str, Any] | None
    #: (path, length, mtime_ms) of kept features rows.
    kept_features: tuple[tuple[str, int, int], ...] = ()
    #: kept errors rows (``errors/`` columns).
    kept_errors: tuple[Any, ...] = ()
    #: rows of the old features/ and errors/ dropped: inputs changed or gone, duplicates.
    dropped: int = 0

    @property
    def done(self) -> frozenset[str]:
        return frozenset([k[0] for k in self.kept_features] + [r["path"] for r in self.kept_errors])

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


def _check_resumable(previous: dict[str, Any], weights: ResolvedWeights, out: str) -> None:
    """The run to resume must have been made the same way, or its features would mix."""
    checks = [
        ("job", previous.get("job"), JOB_NAME),
        ("model", (previous.get("model") or {}).get("name"), MODEL_NAME),
        ("preprocessing", (previous.get("preprocessing") or {}).get("name"), PREPROCESSING),
        ("weights", (previous.get("weights") or {}).get("arrays_sha256"), weights.digest),
    ]
    for what, theirs, ours in checks:
        if theirs != ours:
            raise ConfigError(
                f"--resume {out}: that run was made with another {what} ({theirs!r}, now "
                f"{ours!r}); features from both cannot be mixed. Use --overwrite to start "
                f"again, or another --output.")


def current_metadata(spark: SparkSession, config: FeaturizeConfig,
                     listing: Listing) -> dict[str, tuple[int, int]]:
    """path -> (length, mtime_ms) of every listed input (metadata only, no content)."""
    if listing.objects is not None:
        return {o[0]: (o[1], o[2]) for o in listing.objects}
    rows = (read_images(spark, config.input, config.extensions)
            .select("path", "length", F.expr("unix_millis(modificationTime)").alias("ms"))
            .collect())
    found = {r["path"]: (int(r["length"]), int(r["ms"])) for r in rows}
    for path in listing.listed - found.keys():  # 0-byte files: the scan skips them
        found[path] = storage.stat(spark, path)
    return found


#: Settings that decide which inputs become errors: a resume must use the run's own.
RESUME_SAME = ("max_file_bytes", "max_pixels")


def previous_run(spark: SparkSession, config: FeaturizeConfig) -> dict[str, Any] | None:
    """The manifest of the run ``--resume`` resumes (None: nothing there yet).

    Raises
    ------
    ConfigError
        The output holds files but no manifest, or the run used other limits.
    """
    out = config.output
    manifest_uri = storage.join(out, MANIFEST_NAME)
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
    return previous




def _recover_swap(spark: SparkSession, out: str) -> None:
    """Finish or undo a features/ swap that a stopped resume left halfway."""
    features_uri, nxt = storage.join(out, "features"), storage.join(out, "_features_next")
    if not storage.exists(spark, nxt):
        return
    if not storage.exists(spark, features_uri) and storage.exists(
            spark, storage.join(nxt, "_SUCCESS")):
        logger.info("--resume: completing the features/ swap a stopped resume left")
        storage.rename(spark, nxt, features_uri)
    else:
        storage.delete(spark, nxt)


def plan_resume(spark: SparkSession, config: FeaturizeConfig, listing: Listing,
                weights: ResolvedWeights, previous: dict[str, Any] | None) -> ResumePlan:
    """Match what the run directory already holds against the inputs listed now.

    Raises
    ------
    ConfigError
        The run was made with other weights, model or preprocessing.
    """
    out = config.output
    if previous is None:
        return ResumePlan(None)
    _check_resumable(previous, weights, out)
    features_uri, errors_uri = storage.join(out, "features"), storage.join(out, "errors")
    _recover_swap(spark, out)
    # A write stopped partway leaves its uncommitted attempts here; they are not rows.
    storage.delete(spark, storage.join(features_uri, "_temporary"))
    storage.delete(spark, storage.join(errors_uri, "_temporary"))
    current = current_metadata(spark, config, listing)
    ms = F.expr("unix_millis(modification_time)").alias("ms")
    # Explicit schemas: a folder a stopped write left empty is zero rows, not an error.
    old_features = (spark.read.schema(FEATURES_DDL).parquet(features_uri)
                    .select("path", "length", ms).collect()
                    if storage.exists(spark, features_uri) else [])
    old_errors = (spark.read.schema(ERRORS_DDL).parquet(errors_uri)
                  .select(*[c for c in ERRORS_COLUMNS if c != "modification_time"], ms)
                  .collect()
                  if storage.exists(spark, errors_uri) else [])
    seen: set[str] = set()
    kept_features = []
    for r in old_features:
        if r["path"] not in seen and current.get(r["path"]) == (r["length"], r["ms"]):
            kept_features.append((r["path"], int(r["length"]), int(r["ms"])))
            seen.add(r["path"])
    kept_errors = []
    for r in old_errors:
        if (r["path"] not in seen and r["error"] != "not_read"
                and current.get(r["path"]) == (r["length"], r["ms"])):
            kept_errors.append(r)
            seen.add(r["path"])
    dropped = len(old_features) + len(old_errors) - len(kept_features) - len(kept_errors)
    logger.info("--resume: keeping %d features rows and %d errors rows of %s; %d dropped "
                "(inputs changed or gone); %d inputs to read", len(kept_features),
                len(kept_errors), out, dropped, len(listing.listed - seen))
    return ResumePlan(previous, tuple(kept_features), tuple(kept_errors), dropped)


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
    # Spark's scan covers every listed file under the limit (--resume's kept ones are
    # dropped after the scan); the boto3 path fetches only the files to read.
    n_scan = len(listing.listed) - len(listing.too_large)
    n_read = n_scan if listing.objects is None else len(listing.to_read)
    read_bytes = max(listing.n_bytes - sum(t[1] for t in listing.too_large), 0)
    read_bytes = int(read_bytes * n_read / max(n_scan, 1))
    plan = plan_partitions(n_read, read_bytes, sc.defaultParallelism, cap)
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
        # binaryFile evaluates length filters on the file status, before opening the
        # file: the bytes of a too-large file are never read.
        images = images.where(F.col("length") <= F.lit(config.file_byte_limit))
        if listing.done:
            done = spark.createDataFrame([(p,) for p in sorted(listing.done)], "path string")
            images = images.join(F.broadcast(done), "path", "left_anti")
    else:
        keep = listing.to_read
        images = s3.read_images(spark, tuple(o for o in listing.objects if o[0] in keep),
                                plan.partitions)
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
    spark: SparkSession, fz: Featurized | None, listing: Listing, errors_uri: str,
    kept: tuple[Any, ...] = (),
) -> dict[str | None, int]:
    """Write ``errors/`` (decode failures, unscanned and too-large files, and ``kept``
    rows of a resumed run); returns counts by reason, of this pass only.

    The ``None`` key counts the featurized rows. Call after the first action.
    """
    by_reason: dict[str | None, int] = {None: 0}
    missing = list(listing.too_large)
    errors = None
    if fz is not None:
        metrics = fz.observation.get
        by_reason.update({r: int(metrics[r]) for r in ERROR_REASONS if metrics[r]})
        by_reason[None] = int(metrics["featurized"])
        if int(metrics["rows"]) != sum(by_reason.values()):
            raise JobError(f"unknown error reason among {metrics}")
        missing += unscanned_files(spark, fz.frame, listing.to_read, int(metrics["rows"]))
        errors = error_rows(fz.frame)
    for row in missing:
        by_reason[row[3]] = by_reason.get(row[3], 0) + 1
    if missing:
        frame = unscanned_frame(spark, missing, listing.root)
        errors = frame if errors is None else errors.unionByName(frame)
    if kept:
        # mtime as epoch ms, back to a timestamp in Spark: no Python datetimes (and no
        # time-zone or DST folding) between the old row and the new one
        frame = spark.createDataFrame(
            [(r["path"], r["label"], r["length"], r["ms"], r["error"], r["detail"])
             for r in kept],
            "path string, label string, length long, ms long, error string, detail string",
        ).select("path", "label", "length",
                 F.expr("timestamp_millis(ms)").alias("modification_time"), "error", "detail")
        errors = frame if errors is None else errors.unionByName(frame)
    if errors is None:
        errors = spark.createDataFrame([], ERRORS_DDL)
    errors.coalesce(1).write.mode("errorifexists").parquet(errors_uri)
    return by_reason




def write_features(spark: SparkSession, fz: Featurized | None, out: str,
                   plan: ResumePlan | None) -> None:
    """Write ``features/``: new rows, plus the rows a resumed run keeps.

    A fresh run writes features/ once. A resume appends new part files when every old
    row is kept; when some are dropped (inputs changed or gone), it writes kept + new
    into ``_features_next/`` and swaps it in.
    """
    uri = storage.join(out, "features")
    new = features_rows(fz.observed) if fz is not None else None
    if plan is None or not storage.exists(spark, uri):
        if new is None:  # resume of nothing: an empty, typed features/
            new = spark.createDataFrame([], FEATURES_DDL)
        new.write.mode("errorifexists").options(**COMMIT_V2).parquet(uri)
        return
    if plan.dropped == 0:
        if new is not None:
            new.write.mode("append").options(**COMMIT_V2).parquet(uri)
        return
    keys = spark.createDataFrame(list(plan.kept_features), "path string, length long, ms long")
    old = spark.read.schema(FEATURES_DDL).parquet(uri)
    kept = old.join(keys, (old["path"] == keys["path"]) & (old["length"] == keys["length"])
                    & (F.expr("unix_millis(modification_time)") == keys["ms"]), "left_semi")
    rows = kept if new is None else kept.unionByName(new)
    nxt = storage.join(out, "_features_next")
    storage.delete(spark, nxt)
    rows.write.mode("errorifexists").parquet(nxt)
    storage.delete(spark, uri)
    storage.rename(spark, nxt, uri)


def mark_classifier_stale(spark: SparkSession, out: str, pca_model_id: str) -> bool:
    """After a resume rebuilt PCA: flag ``metrics.json`` of a classifier trained on the
    old PCA model (predict refuses it; ``make train`` clears the flag)."""
    uri = storage.join(out, "metrics.json")
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
                   "metrics.json; train again", out)
    return True


def _run(
    spark: SparkSession,
    config: FeaturizeConfig,
    listing: Listing,
    weights: ResolvedWeights,
    threads: int,
    warming: threading.Thread,
    timer: StageTimer,
    manifest: dict[str, Any],
    plan: ResumePlan | None = None,
) -> None:
    out = config.output
    n_inputs = listing.n_inputs
    n_read = len(listing.to_read)
    fz = None
    if n_read or plan is None:
        fz = featurize_inputs(spark, config, listing, weights, threads, warming, timer,
                              manifest)
    try:
        with timer.stage("featurize"):
            if fz is not None:
                with fz.confs():
                    write_features(spark, fz, out, plan)
            else:
                write_features(spark, None, out, plan)
        with timer.stage("errors_write"):
            if plan is not None:
                storage.delete(spark, storage.join(out, "errors"))
            kept_errors = plan.kept_errors if plan else ()
            by_reason = write_errors(spark, fz, listing, storage.join(out, "errors"),
                                     kept_errors)
        if fz is not None:
            manifest["spark"]["partitions_used"] = fz.frame.rdd.getNumPartitions()
    finally:
        if fz is not None:
            fz.release()

    n_new_ok = by_reason.pop(None, 0)
    n_new_failed = sum(by_reason.values())
    for r in kept_errors:
        by_reason[r["error"]] = by_reason.get(r["error"], 0) + 1
    n_ok = n_new_ok + (len(plan.kept_features) if plan else 0)
    n_failed = sum(by_reason.values())
    manifest["counts"].update({
        "featurized": n_ok,
        "failed": n_failed,
        "failed_by_reason": dict(sorted(by_reason.items())),
        "model_images": int(fz.counter.value) if fz is not None else 0,
    })
    if plan is not None:
        manifest["resume"].update({"featurized_now": n_new_ok, "failed_now": n_new_failed})
    if n_ok + n_failed != n_inputs:
        raise JobError(
            f"{n_inputs} inputs were listed but {n_ok} featurized + {n_failed} failed were "
            f"written; the input changed during the run? Rerun with --overwrite."
        )
    feat_seconds = timer.seconds["featurize"]
    manifest["images_per_second"]["featurize"] = round(n_read / feat_seconds, 2)

    # PCA passes read the materialised parquet, never the CNN again.
    features = spark.read.parquet(storage.join(out, "features"))
    with timer.stage("pca_fit"):
        model, summary = fit_reducer(
            features, n_ok, k=config.pca_k,
            variance=None if config.pca_k is not None else config.pca_variance,
        )
    model_id = model_fingerprint(model)
    manifest["pca"] = {**summary.to_manifest(), "model_id": model_id}
    with timer.stage("pca_write"):
        if plan is not None:
            storage.delete(spark, storage.join(out, "pca"))
            storage.delete(spark, storage.join(out, "models", "pca"))
        # The model save is several small Spark jobs; run them beside the projection.
        with ThreadPoolExecutor(max_workers=1) as saver:  # waits for the save on any exit
            saved = saver.submit(model.write().save, storage.join(out, "models", "pca"))
            project(model, features).write.mode("errorifexists").parquet(
                storage.join(out, "pca"))
            saved.result()
    if plan is not None:
        manifest["resume"]["classifier_marked_stale"] = mark_classifier_stale(
            spark, out, model_id)

    manifest["status"] = "complete"
    manifest["finished_at"] = utc_now()
    total = timer.total()
    manifest["timings_seconds"]["total"] = total
    manifest["images_per_second"]["end_to_end"] = round(n_read / total, 2)
    storage.write_text(spark, storage.join(out, MANIFEST_NAME), to_json(manifest))
    logger.info(
        "run complete: %d inputs, %d featurized, %d failed, PCA k=%d, %.1f images/s",
        n_inputs, n_ok, n_failed, summary.k, manifest["images_per_second"]["end_to_end"],
    )
