"""The train-classifier job: ``RUN/pca/`` → ``RUN/models/classifier/`` + ``RUN/metrics.json``."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from featurize.classifier import calibration
from featurize.classifier.classify import (
    CV_FOLDS, REG_GRID, ClassifierParams, cross_validate, evaluate, fit_classifier,
    labelled_only, labels_of, predict, split_logits,
)
from featurize.classifier.export import ExportedClassifier
from featurize.classifier.split import read_split_file, split_by_file, stratified_split
from featurize.config import refuse_credentials
from featurize.encryption import Encryption
from featurize.errors import ClassifierError, ConfigError
from featurize.manifest import FORMAT_VERSION, StageTimer, utc_now
from featurize.reduce.pca import model_fingerprint
from featurize.rundir import TEST_PREDICTIONS_COLUMNS, RunDir
from featurize.search.groups import duplicate_roots
from featurize.search.leakage import DEFAULT_THRESHOLD, leakage
from featurize.sparkconf import sql_conf
from featurize.storage import filesystem
from featurize.storage.output import read_finished_run

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainConfig:
    """Options of ``jobs/train_classifier.py``."""

    run: str
    test_fraction: float = 0.2
    seed: int = 0
    split_file: str | None = None
    #: ``None`` (``--reg-param auto``): chosen by cross-validation over ``REG_GRID``.
    reg_param: float | None = None
    elastic_net_param: float = 0.0
    max_iter: int = 200
    standardize: bool = False
    #: Fit a temperature on out-of-fold logits and apply it (``--no-calibrate``: off).
    calibrate: bool = True
    #: Cosine at or above which a test image counts as a near-duplicate of a training
    #: image (``--leakage T``; ``None``, ``--leakage off``: not checked).
    leakage: float | None = DEFAULT_THRESHOLD
    #: Cosine at or above which training images are one near-duplicate group, kept in one
    #: cross-validation fold (``--group-folds T``; ``None``: folds by label only).
    group_folds: float | None = None
    #: Server-side encryption of what the job writes to S3 (``--sse``).
    encryption: Encryption = field(default_factory=Encryption)

    def __post_init__(self) -> None:
        if not self.run:
            raise ConfigError("--run is required: a run directory made by featurize_images.")
        refuse_credentials("--run", self.run)
        refuse_credentials("--split-file", self.split_file)
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"--test-fraction {self.test_fraction} must be between 0 and 1.")
        if (self.reg_param is not None and self.reg_param < 0) or not (
                0.0 <= self.elastic_net_param <= 1.0):
            raise ConfigError("--reg-param must be >= 0 and --elastic-net-param in [0, 1].")
        if self.max_iter < 1:
            raise ConfigError("--max-iter must be at least 1.")
        if self.group_folds is not None and not 0.0 < self.group_folds <= 1.0:
            raise ConfigError(f"--group-folds {self.group_folds}: give a cosine similarity "
                              f"in (0, 1] (e.g. 0.9).")
        if self.leakage is not None and not 0.0 < self.leakage <= 1.0:
            raise ConfigError(f"--leakage {self.leakage}: give a cosine similarity in (0, 1] "
                              f"(e.g. 0.95), or off.")


def run(spark: SparkSession, config: TrainConfig) -> dict[str, Any]:
    """Train, evaluate and save; returns the metrics written to ``RUN/metrics.json``."""
    timer = StageTimer()
    run_dir = RunDir(config.run)
    manifest = read_finished_run(spark, run_dir)
    # Read before anything changes: a missing split file is a usage error (exit 2).
    split_map = read_split_file(spark, config.split_file) if config.split_file else None
    # metrics.json marks a trained run, so it goes first and comes back last: a retrain
    # that fails halfway never leaves a new classifier beside old metrics.
    filesystem.delete(spark, run_dir.metrics)
    pca_model = PipelineModel.load(run_dir.pca_model)
    # The PCA table is small (k floats per image): Spark's default 200 shuffle partitions
    # for the split's window and the evaluation's groupBy would be 200 near-empty tasks
    # per stage (most of this job's time on a laptop).
    shuffle = {"spark.sql.shuffle.partitions": str(max(spark.sparkContext.defaultParallelism, 2))}
    with sql_conf(spark, shuffle):
        return _train(spark, config, manifest, pca_model, timer, split_map=split_map)


def _train(spark: SparkSession, config: TrainConfig, manifest: dict[str, Any],
           pca_model: PipelineModel, timer: StageTimer, *,
           split_map: DataFrame | None) -> dict[str, Any]:
    # Long because it is one job read top to bottom: split, fit, evaluate, write, and
    # the metrics.json that records all of it.
    run_dir = RunDir(config.run)
    pca = labelled_only(spark.read.parquet(run_dir.pca)).cache()
    try:
        with timer.stage("split"):
            unlisted = 0
            if split_map is not None:
                train, test, unlisted = split_by_file(pca, split_map)
                split = {"method": "file", "file": config.split_file}
            else:
                train, test = stratified_split(pca, config.test_fraction, config.seed)
                split = {"method": "stratified", "test_fraction": config.test_fraction,
                         "seed": config.seed}
            train, test = train.cache(), test.cache()
            n_train, n_test = train.count(), test.count()
            if n_train == 0 or n_test == 0:
                raise ClassifierError(
                    f"the split left {n_train} training and {n_test} test images; "
                    f"check --split-file / --test-fraction.")
        params = ClassifierParams(config.reg_param, config.elastic_net_param, config.max_iter,
                                  config.standardize)
        with timer.stage("fit"):
            fitted = _fit(train, params, config)
        model, temperature = fitted.model, fitted.calibration["temperature"]
        labels = labels_of(model)
        with timer.stage("evaluate"):
            test_pred = predict(model, test, temperature).cache()
            test_metrics = evaluate(test_pred, labels)
            train_metrics = evaluate(predict(model, train, temperature), labels)
            confidence = _confidence_scores(model, test, temperature, config.seed)
        if config.leakage is not None:
            with timer.stage("leakage"):
                leaked = leakage(spark, train, test, config.leakage)
            logger.info("leakage: %d of %d test images have a training image at cosine >= %g",
                        leaked["leaked"], leaked["test_images"], config.leakage)
        else:
            leaked = None
        missing = sorted(set(labels) - {r["label"] for r in test.select("label").distinct().collect()})
        with timer.stage("write"):
            model.write().overwrite().save(run_dir.classifier)
            filesystem.write_bytes(spark, run_dir.classifier_export, ExportedClassifier.from_models(
                pca_model, model, temperature, manifest.get("weights", {}).get("sha256"),
                manifest.get("preprocessing", {}).get("name")).to_bytes())
            test_pred.select(*TEST_PREDICTIONS_COLUMNS).write.mode("overwrite").parquet(
                run_dir.test_predictions)
        for frame in (train, test, test_pred):
            frame.unpersist()
    finally:
        pca.unpersist()
    metrics = {
        "format_version": FORMAT_VERSION,
        "job": "train_classifier",
        "trained_at": utc_now(),
        "run": config.run,
        "config": asdict(config),
        "split": {**split, "train": n_train, "test": n_test, "not_in_split_file": unlisted,
                  "labels_missing_from_test": missing},
        "model": {"type": "LogisticRegression(family=multinomial)", **asdict(fitted.params)},
        "reg_param_search": fitted.search,
        "calibration": fitted.calibration,
        "pca_model_id": model_fingerprint(pca_model),
        "weights_sha256": manifest.get("weights", {}).get("sha256"),
        "preprocessing": manifest.get("preprocessing", {}).get("name"),
        "labels": labels,
        "accuracy": test_metrics["accuracy"],
        "macro_f1": test_metrics["macro_f1"],
        **confidence,
        "leakage": leaked,
        "test": test_metrics,
        "train": train_metrics,
        "timings_seconds": {**timer.seconds, "total": timer.total()},
    }
    filesystem.write_text(spark, run_dir.metrics, json.dumps(metrics, indent=2) + "\n")
    logger.info("classifier: test accuracy %.4f, macro-F1 %.4f on %d images",
                metrics["accuracy"], metrics["macro_f1"], n_test)
    return metrics


@dataclass
class _Fitted:
    model: PipelineModel
    #: The settings the model was fitted with (``reg_param`` as chosen).
    params: ClassifierParams
    #: ``metrics.json``'s ``reg_param_search`` (``None``: no cross-validation ran).
    search: dict[str, Any] | None
    #: ``metrics.json``'s ``calibration``; its ``temperature`` is what predict applies.
    calibration: dict[str, Any]


def _fit(train: DataFrame, params: ClassifierParams, config: TrainConfig) -> _Fitted:
    """Fit at a fixed ``reg_param``, or cross-validate: to choose it (``auto``) and/or to
    get the out-of-fold logits the temperature is fitted on (one grid value then)."""
    if params.reg_param is not None and not config.calibrate:
        return _Fitted(fit_classifier(train, params), params, None, _UNCALIBRATED)
    grid = REG_GRID if params.reg_param is None else (params.reg_param,)
    groups, grouped = None, None
    if config.group_folds is not None:
        groups = duplicate_roots(train.sparkSession, train, config.group_folds)
        g = groups.agg(F.count("*").alias("images"),
                       F.countDistinct("root").alias("groups")).first()
        grouped = {"threshold": config.group_folds, "images": g["images"], "groups": g["groups"]}
    cv = cross_validate(train, params, grid, seed=config.seed, groups=groups)
    search = {"method": "CrossValidator", "folds": CV_FOLDS,
              "metric": "logLoss (mean over the validation folds)",
              "auto": params.reg_param is None,
              "scores": [{"reg_param": r, "log_loss": m} for r, m in cv.scores.items()],
              "chosen": cv.reg_param,
              "oof_accuracy": float(np.mean(np.argmax(cv.oof_logits, axis=1) == cv.oof_labels))
              if len(cv.oof_labels) else None,
              "group_folds": grouped}
    calibrated = _UNCALIBRATED
    t = calibration.fit_temperature(cv.oof_logits, cv.oof_labels) if config.calibrate else 1.0
    if config.calibrate and calibration.at_bound(t):
        calibrated = {**_UNCALIBRATED, "reason": (
            f"the held-out logits do not determine a temperature (the fit ran to T = {t:.3g}, "
            f"the end of [{calibration.T_MIN}, {calibration.T_MAX}]; typically every "
            f"held-out image was right): the regression's own probabilities are kept")}
    elif config.calibrate:
        calibrated = {"method": "temperature", "temperature": t,
                      "fitted_on": f"out-of-fold logits of the training split ({CV_FOLDS} folds)",
                      "images": len(cv.oof_labels),
                      "nll": {"before": calibration.nll(cv.oof_logits, cv.oof_labels),
                              "after": calibration.nll(cv.oof_logits, cv.oof_labels, t)}}
    logger.info("regParam %g%s; temperature %.3f", cv.reg_param,
                " (cross-validated)" if params.reg_param is None else "",
                calibrated["temperature"])
    return _Fitted(cv.model, replace(params, reg_param=cv.reg_param), search, calibrated)


_UNCALIBRATED: dict[str, Any] = {"method": "none", "temperature": 1.0}


def _confidence_scores(model: PipelineModel, test: DataFrame, temperature: float,
                       seed: int) -> dict[str, Any]:
    """``ece``, ``brier`` (before and after the temperature), ``top5_accuracy`` (more than
    5 labels) and ``confidence`` (NLL, mean confidence, the reliability bins) on the
    test split's images of known labels."""
    logits, y = split_logits(model, test, seed=seed)
    if len(y) == 0:
        return {"ece": None, "brier": None, "confidence": None}
    s = calibration.scores(logits, y, temperature)
    out: dict[str, Any] = {"ece": s.pop("ece"), "brier": s.pop("brier")}
    if logits.shape[1] > 5:
        out["top5_accuracy"] = calibration.top_k_accuracy(calibration.softmax(logits), y, 5)
    out["confidence"] = {"images": len(y), "bins": calibration.ECE_BINS, **s}
    return out
