"""The featurize job: images → features/, errors/, pca/, models/pca/, manifest.json.

:func:`run` reads top to bottom as the job runs: check → list while the weights are
resolved and the engine prepared → (resume plan) → featurize → errors → PCA →
manifest → publish. It takes an injected SparkSession and a :class:`FeaturizeConfig`; ``jobs/featurize_images.py`` only parses
flags and calls it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

from pyspark.sql import SparkSession

from featurize.config import FEATURE_DIM, FeaturizeConfig
from featurize.errors import JobError
from featurize.extract.featurize_pass import start_pass, start_warm_up, write_errors
from featurize.extract.pipeline import features_rows
from featurize.extract.resume import (
    JOB_NAME, ResumePlan, mark_classifier_stale, plan_resume, previous_run, swap_in,
    write_features,
)
from featurize.inputs.listing import Listing
from featurize.inputs.read import list_inputs
from featurize.manifest import StageTimer, header, utc_now
from featurize.model.backbone import model_name
from featurize.model.engines import PreparedEngine, WorkerSpec, prepare_for
from featurize.model.preprocess import Preprocessing
from featurize.model.weights import ResolvedWeights
from featurize.reduce.pca import (
    FEATURES_READ_CONF, fit_reducer, model_fingerprint, write_projection,
)
from featurize.rundir import RunDir
from featurize.sparkconf import sql_conf, task_cpus
from featurize.storage import filesystem
from featurize.storage.output import RunOutput

logger = logging.getLogger(__name__)


def run(spark: SparkSession, config: FeaturizeConfig,
        timer: StageTimer | None = None) -> dict[str, Any]:
    """Run the featurize job; returns the manifest written to ``output/manifest.json``
    (a ``--resume`` with nothing to do writes nothing and returns the run's manifest).
    ``timer``: the stages' seconds go there too (a caller's own, e.g. a benchmark's).

    Raises
    ------
    UsageError
        Bad configuration or weights, found before anything is written.
    RunFailure, Exception
        After work began: the manifest says ``failed``, then the error is re-raised.
    """
    started = utc_now()
    timer = timer or StageTimer()
    # Every check that needs no Spark job comes first: the output, the listing (the file
    # index is driver-side metadata) and what --resume would resume.
    in_mode = "list" if config.input_list else filesystem.io_mode(spark, config.input, "--input")
    output = RunOutput(spark, config.output, config.overwrite, config.resume,
                       encryption=config.encryption, resumable=True)
    output.check()
    # What --resume resumes: the run directory itself, or in boto3 mode its staged copy
    # (kept until its upload succeeds).
    resumed = replace(config, output=output.write_uri)
    # The driver prepares the engine (weights, IR) in a thread while it lists; once the
    # input and the run to resume are known good (a usage error starts no Spark job),
    # the workers start the engine while the preparation finishes.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="featurize-engine") as pool:
        preparing = pool.submit(timed, timer, "prepare_engine", prepare_for, config)
        previous = previous_run(spark, resumed) if config.resume else None
        with timer.stage("list_inputs"):
            listing = list_inputs(spark, config, in_mode)
        threads = config.threads or task_cpus(spark)
        spec = WorkerSpec(config.engine, config.precision, config.batch_size, threads,
                          config.image_size)
        # A resume warms the workers only once its plan (Spark jobs that need the
        # cores) says there is something to featurize.
        warming = None if config.resume else start_warm_up(spark, spec)
        weights, engine = preparing.result()
    logger.info("input read by %s, output written by %s", in_mode, output.mode)
    plan: ResumePlan | None = None
    if config.resume:
        with timer.stage("plan_resume"):
            plan = plan_resume(spark, resumed, listing, weights, previous)
        listing = listing.with_done(plan.done, plan.n_done,
                                    plan.kept_by_reason.get("too_large", 0))
    # (in boto3 mode the staged run still has to reach S3: the job goes on, featurizing
    # nothing, and uploads it)
    if plan is not None and plan.nothing_to_do(listing, config) and output.mode == "spark":
        logger.info("--resume: %s already holds every input (%d featurized, %d failed) and "
                    "nothing changed; nothing to do", config.output, plan.n_kept_features,
                    plan.n_kept_errors)
        return plan.previous  # type: ignore[return-value]
    if warming is None and listing.n_to_read:
        warming = start_warm_up(spark, spec)

    manifest = new_manifest(spark, config, listing, weights, engine, plan=plan, timer=timer,
                            io={"input": in_mode, "output": output.mode}, started=started)
    with output.recorded(manifest, timer) as run_dir:
        fz = None
        if listing.n_to_read or plan is None:
            fz = start_pass(spark, config, listing, engine, threads=threads,
                            warming=warming, timer=timer)
            manifest["spark"].update(fz.planned())
        # The CNN runs here, once per image, at the features/ write.
        with fz or nullcontext():
            with timer.stage("featurize"), (fz.confs() if fz else nullcontext()), \
                    (fz.progress() if fz else nullcontext()):
                swap_features = write_features(
                    spark, features_rows(fz.observed) if fz else None, run_dir, plan)
            with timer.stage("errors_write"):
                # a resume reads the old tables until both new ones are written
                errors_uri = run_dir.errors if plan is None else run_dir.errors_next
                n_new_ok, by_reason = write_errors(
                    spark, fz, listing, errors_uri, plan.kept_errors if plan else None,
                    plan.n_kept_errors if plan else 0)
                if plan is not None:
                    if swap_features:
                        swap_in(spark, run_dir.features_next, run_dir.features)
                    swap_in(spark, run_dir.errors_next, run_dir.errors)
            if fz is not None:
                manifest["spark"]["partitions_used"] = fz.partitions_used
        record_counts(manifest, listing, plan, n_new_ok, by_reason,
                      model_images=fz.model_images if fz else 0)
        n_read = listing.n_to_read
        manifest["images_per_second"]["featurize"] = round(
            n_read / timer.seconds["featurize"], 2)
        fit_pca(spark, config, run_dir, manifest, timer=timer, rebuild=plan is not None)
        if plan is not None:
            manifest["resume"]["classifier_marked_stale"] = mark_classifier_stale(
                spark, run_dir, manifest["pca"]["model_id"])
        manifest["files"] = {name: filesystem.count_parts(spark, run_dir.at(name))
                             for name in ("features", "errors", "pca")}
        manifest["images_per_second"]["end_to_end"] = round(n_read / timer.total(), 2)
    logger.info("run complete: %d inputs, %d featurized, %d failed, PCA k=%d, %.1f images/s",
                listing.n_inputs, manifest["counts"]["featurized"],
                manifest["counts"]["failed"], manifest["pca"]["k"],
                manifest["images_per_second"]["end_to_end"])
    return manifest


def timed(timer: StageTimer, stage: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` timed as ``stage`` (for work submitted to a thread)."""
    with timer.stage(stage):
        return fn(*args)


def new_manifest(spark: SparkSession, config: FeaturizeConfig, listing: Listing,
                 weights: ResolvedWeights, engine: PreparedEngine, *, plan: ResumePlan | None, timer: StageTimer,
                 io: dict[str, str], started: str) -> dict[str, Any]:
    """The featurize manifest as it is first written (``status: running``)."""
    sc = spark.sparkContext
    return {
        **header(JOB_NAME, config.to_dict(), started),
        "spark": {"version": spark.version, "master": sc.master, "app_id": sc.applicationId,
                  "default_parallelism": sc.defaultParallelism},
        "weights": weights.to_manifest(),
        "engine": engine.to_manifest(),
        "model": {"name": model_name(config.image_size), "feature_dim": FEATURE_DIM,
                  "batch_size": config.batch_size},
        "preprocessing": Preprocessing.of(config).to_manifest(),
        "input": {"uri": config.input, "root": listing.root, "list": config.input_list},
        "io": io,
        "counts": {"inputs": listing.n_inputs, "input_bytes": listing.n_bytes,
                   "skipped_by_extension": dict(sorted(listing.skipped.items()))},
        "pca": None,
        "files": None,
        "resume": plan.to_manifest() if plan else None,
        "timings_seconds": timer.seconds,
        "images_per_second": {},
        "outputs": dict(RunDir.FEATURIZE_OUTPUTS),
    }


def record_counts(manifest: dict[str, Any], listing: Listing, plan: ResumePlan | None,
                  n_new_ok: int, by_reason: dict[str, int], *, model_images: int) -> None:
    """Add the outcome counts to the manifest, and check that every input is accounted
    for exactly once.

    Raises
    ------
    JobError
        featurized + failed differs from the inputs listed (the input changed mid-run).
    """
    n_new_failed = sum(by_reason.values())
    by_reason = dict(by_reason)
    for reason, n in (plan.kept_by_reason if plan else {}).items():
        by_reason[reason] = by_reason.get(reason, 0) + n
    n_ok = n_new_ok + (plan.n_kept_features if plan else 0)
    n_failed = sum(by_reason.values())
    manifest["counts"].update({"featurized": n_ok, "failed": n_failed,
                               "failed_by_reason": dict(sorted(by_reason.items())),
                               "model_images": model_images})
    if plan is not None:
        manifest["resume"].update({"featurized_now": n_new_ok, "failed_now": n_new_failed})
    if n_ok + n_failed != listing.n_inputs:
        raise JobError(
            f"{listing.n_inputs} inputs were listed but {n_ok} featurized + {n_failed} failed "
            f"were written; the input changed during the run? Rerun with --overwrite.")


def fit_pca(spark: SparkSession, config: FeaturizeConfig, run_dir: RunDir,
            manifest: dict[str, Any], *, timer: StageTimer, rebuild: bool) -> None:
    """Fit StandardScaler + PCA on ``features/``; write ``pca/`` and ``models/pca/``.

    The passes read the materialised parquet, never the CNN again. ``rebuild``: replace
    the PCA outputs a resumed run already has.
    """
    with sql_conf(spark, FEATURES_READ_CONF):
        _fit_pca(spark, config, run_dir, manifest, timer=timer, rebuild=rebuild)


def _fit_pca(spark: SparkSession, config: FeaturizeConfig, run_dir: RunDir,
             manifest: dict[str, Any], *, timer: StageTimer, rebuild: bool) -> None:
    features = spark.read.parquet(run_dir.features)
    with timer.stage("pca_fit"):
        model, summary = fit_reducer(
            features, manifest["counts"]["featurized"], k=config.pca_k,
            variance=None if config.pca_k is not None else config.pca_variance)
    manifest["pca"] = {**summary.to_manifest(), "model_id": model_fingerprint(model)}
    with timer.stage("pca_write"):
        if rebuild:
            filesystem.delete(spark, run_dir.pca)
            filesystem.delete(spark, run_dir.pca_model)
        # The model save is several small Spark jobs; run them beside the projection.
        with ThreadPoolExecutor(max_workers=1) as saver:  # waits for the save on any exit
            saved = saver.submit(model.write().save, run_dir.pca_model)
            write_projection(model, features, run_dir.pca)
            saved.result()
