"""One featurization pass over the inputs, shared by the featurize and predict jobs.

:func:`start_warm_up` prepares the Python workers while the driver lists inputs and
prepares the engine; :func:`start_pass` plans the partitions, broadcasts the engine's
payload and persists the UDF's output (lazily: the CNN runs once per image, at the first
action);
:func:`write_errors` writes ``errors/`` after that action and counts the outcomes.
"""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from featurize.config import (
    DEFAULT_FILES_PER_PARTITION, SCAN_FILES_PER_PARTITION, FeaturizeConfig,
)
from featurize.errors import JobError
from featurize.extract.pipeline import (
    PartitionPlan, apply_featurizer, error_rows, plan_partitions, with_labels,
)
from featurize.extract.progress import Progress
from featurize.extract.udf import make_featurize_udf
from featurize.inputs.listing import Listing
from featurize.inputs.read import read_contents, records_frame, unscanned
from featurize.manifest import StageTimer
from featurize.model.decode import ERROR_REASONS
from featurize.model.engines import PreparedEngine, WorkerSpec
from featurize.model.preprocess import Preprocessing
from featurize.rundir import ERRORS_DDL
from featurize.sparkconf import sql_conf

logger = logging.getLogger(__name__)

#: Rows per ``errors/`` file: a row is a path and a short reason (~200 bytes), so a file
#: is some tens of MB.
ERROR_ROWS_PER_FILE = 500_000


def _stopped(sc: Any) -> bool:
    """The SparkContext is stopped or stopping (its JVM side may already be gone)."""
    try:
        return sc._jsc is None or sc._jsc.sc().isStopped()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a gateway that no longer answers: stopped
        return True


def start_warm_up(spark: SparkSession, spec: WorkerSpec) -> threading.Thread:
    """Start the engine in the Python workers in the background (see
    :func:`featurize.model.engines.worker.warm_up`).

    One task per core, run while the driver lists inputs and prepares the engine; with
    worker reuse the UDF's tasks then find warm workers. A failure here is logged only:
    the UDF builds what it needs itself.
    """
    sc = spark.sparkContext
    n = max(sc.defaultParallelism, 1)

    def warm(batches: Iterator[Any]) -> Iterator[Any]:
        from featurize.model.engines import worker

        worker.warm_up(spec)
        yield from batches

    def job() -> None:
        try:
            sc.setJobDescription("featurize: warm up Python workers")
            # A pandas (Arrow) job, not an RDD one: Spark keeps separate Python worker
            # pools for the two, and the UDF runs in the Arrow pool.
            spark.range(0, n, numPartitions=n).mapInPandas(warm, "id long").collect()
        except Exception as exc:  # noqa: BLE001 - an optimisation must never fail the run
            if _stopped(sc) or "SparkContext was shut down" in str(exc):
                return  # the job ended first (a usage error): nothing to warm any more
            logger.warning("worker warm-up failed; workers will build the model on demand",
                           exc_info=True)

    thread = threading.Thread(target=job, name="featurize-warm-up", daemon=True)
    thread.start()
    return thread


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


@dataclass
class FeaturizePass:
    """The persisted UDF output of one pass, and what goes with it.

    Run the first action on ``observed`` inside :meth:`confs`; then call
    :func:`write_errors`. Used as a context manager, it releases the cached rows and the
    broadcast weights on exit.
    """

    spark: SparkSession
    frame: DataFrame
    observed: DataFrame
    observation: Observation
    broadcast: Any
    counter: Any
    rows: Any
    n_read: int
    conf_values: dict[str, str]
    plan: PartitionPlan
    threads: int
    decode_ahead: bool
    workers_read: bool

    def confs(self) -> Any:
        return sql_conf(self.spark, self.conf_values)

    def progress(self, what: str = "featurize") -> Progress:
        """Progress lines while the first action runs (a context manager)."""
        return Progress(what, self.rows, self.n_read)

    @property
    def model_images(self) -> int:
        """Images the CNN ran on (an accumulator: counts retried tasks again)."""
        return int(self.counter.value)

    def planned(self) -> dict[str, int]:
        """The pass's plan, for the manifest's ``spark`` section (recorded before it runs,
        so a failed run's manifest has it too)."""
        return {"partitions_planned": self.plan.partitions,
                "inference_threads_per_task": self.threads,
                "decode_ahead": self.decode_ahead,
                "reader": "workers" if self.workers_read else "scan"}

    @property
    def partitions_used(self) -> int:
        return self.frame.rdd.getNumPartitions()

    def __enter__(self) -> "FeaturizePass":
        return self

    def __exit__(self, *exc: object) -> None:
        self.frame.unpersist()
        self.broadcast.unpersist()


def start_pass(spark: SparkSession, config: FeaturizeConfig, listing: Listing,
               engine: PreparedEngine, *, threads: int,
               warming: threading.Thread | None,
               timer: StageTimer) -> FeaturizePass:
    """Plan partitions, broadcast the engine's payload and persist the UDF's output
    (lazily)."""
    sc = spark.sparkContext
    by_workers = listing.workers_read
    cap = config.files_per_partition or (
        DEFAULT_FILES_PER_PARTITION if by_workers else SCAN_FILES_PER_PARTITION)
    # Spark's scan covers every listed file under the limit (--resume's kept ones are
    # dropped after the scan); the workers read only the files to read.
    n_scan = listing.scan_files
    n_read = listing.n_to_read if by_workers else n_scan
    read_bytes = int(listing.scan_bytes * n_read / max(n_scan, 1))
    plan = plan_partitions(n_read, read_bytes, sc.defaultParallelism, cap)
    broadcast = sc.broadcast(engine.payload)
    counter, rows = sc.accumulator(0), sc.accumulator(0)
    # A task that owns one core gains nothing from a second thread (measured: 41.1
    # against 36.6-40.8 images/s on phone photos, local[2]); one that owns two decodes
    # the next batch on the core the engine leaves between batches (34.4 against 29.9).
    ahead = config.decode_ahead if config.decode_ahead is not None else threads > 1
    featurizer = make_featurize_udf(
        broadcast, engine.worker_spec(config.batch_size, threads, config.image_size),
        max_pixels=config.max_pixels, images_counter=counter, rows_counter=rows,
        preprocessing=Preprocessing.of(config), decode_ahead=ahead,
    )
    conf_values = {
        # A file deleted between the listing and the scan is skipped by the scan instead
        # of failing its task, and becomes a not_read row (read.unscanned).
        "spark.sql.files.ignoreMissingFiles": "true",
        "spark.sql.files.maxPartitionBytes": str(plan.max_partition_bytes),
        # One Arrow batch = one model batch: memory per worker stays flat.
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(config.batch_size),
    }
    labelled = with_labels(read_contents(spark, listing, config, plan.partitions),
                           listing.root, given=listing.labels_given)
    with timer.stage("wait_warm_up"):
        if warming is not None:
            warming.join()
    with sql_conf(spark, conf_values):
        # Persisted so every output comes from one CNN pass. persist() plans the
        # query, so it must happen while the partitioning and Arrow confs are set.
        frame = apply_featurizer(labelled, featurizer(F.col("content"))).persist(
            StorageLevel.MEMORY_AND_DISK)
    observed, observation = outcome_counts(frame, "featurize_outcomes")
    return FeaturizePass(spark=spark, frame=frame, observed=observed, observation=observation,
                         broadcast=broadcast, counter=counter, rows=rows, n_read=n_read,
                         conf_values=conf_values,
                         plan=plan, threads=threads, decode_ahead=ahead,
                         workers_read=by_workers)


def write_errors(spark: SparkSession, fz: FeaturizePass | None, listing: Listing,
                 errors_uri: str, kept: DataFrame | None = None,
                 n_kept: int = 0) -> tuple[int, dict[str, int]]:
    """Write ``errors/``: this pass's decode failures, the listing's too-large and empty
    files, unscanned ones, and the ``kept`` rows (``n_kept`` of them) of a resumed run.
    Call after the pass's first action.

    Returns this pass's ``(featurized, failed by reason)``; ``kept`` is not counted.

    Raises
    ------
    JobError
        The pass produced a reason that is not in the taxonomy.
    """
    by_reason: dict[str, int] = {}
    n_ok = 0
    records = list(listing.empty)
    frames = [] if kept is None else [kept]
    if listing.n_too_large:
        by_reason["too_large"] = listing.n_too_large
        frames.append(listing.too_large_rows())
    if listing.n_missing:
        by_reason["not_read"] = listing.n_missing
        frames.append(listing.missing_rows())
    if fz is not None:
        metrics = fz.observation.get
        failed = {r: int(metrics[r]) for r in ERROR_REASONS if metrics[r]}
        n_ok = int(metrics["featurized"])
        if int(metrics["rows"]) != n_ok + sum(failed.values()):
            raise JobError(f"unknown error reason among {metrics}")
        for reason, n in failed.items():
            by_reason[reason] = by_reason.get(reason, 0) + n
        records += unscanned(spark, fz.frame, listing, int(metrics["rows"]))
        frames.append(error_rows(fz.frame))
    for record in records:
        by_reason[record.error] = by_reason.get(record.error, 0) + 1
    if records:
        frames.append(records_frame(spark, records))
    errors = spark.createDataFrame([], ERRORS_DDL)
    for frame in frames:
        errors = errors.unionByName(frame)
    # Only the error rows are shuffled, from every partition of the cached pass at once
    # (coalesce(1) read the whole pass in one task), into files of ERROR_ROWS_PER_FILE.
    n_rows = sum(by_reason.values()) + n_kept
    errors.repartition(max(1, math.ceil(n_rows / ERROR_ROWS_PER_FILE))).write.mode(
        "errorifexists").parquet(errors_uri)
    return n_ok, by_reason
