"""The train-classifier job: ``RUN/pca/`` → ``RUN/models/classifier/`` + ``RUN/metrics.json``."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from featurize import storage
from featurize.classify import (
    ClassifierParams, evaluate, fit_classifier, labelled_only, labels_of, parse_split_file,
    predict, split_by_file, stratified_split,
)
from featurize.config import refuse_credentials
from featurize.encryption import Encryption
from featurize.errors import ClassifierError, ConfigError
from featurize.manifest import FORMAT_VERSION, StageTimer, utc_now
from featurize.output import read_finished_run
from featurize.reduce import model_fingerprint
from featurize.rundir import TEST_PREDICTIONS_COLUMNS, RunDir
from featurize.sparkconf import sql_conf

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainConfig:
    """Options of ``jobs/train_classifier.py``."""

    run: str
    test_fraction: float = 0.2
    seed: int = 0
    split_file: str | None = None
    reg_param: float = 1e-3
    elastic_net_param: float = 0.0
    max_iter: int = 200
    standardize: bool = False
    #: Server-side encryption of what the job writes to S3 (``--sse``).
    encryption: Encryption = field(default_factory=Encryption)

    def __post_init__(self) -> None:
        if not self.run:
            raise ConfigError("--run is required: a run directory made by featurize_images.")
        refuse_credentials("--run", self.run)
        refuse_credentials("--split-file", self.split_file)
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"--test-fraction {self.test_fraction} must be between 0 and 1.")
        if self.reg_param < 0 or not 0.0 <= self.elastic_net_param <= 1.0:
            raise ConfigError("--reg-param must be >= 0 and --elastic-net-param in [0, 1].")
        if self.max_iter < 1:
            raise ConfigError("--max-iter must be at least 1.")


def run(spark: SparkSession, config: TrainConfig) -> dict[str, Any]:
    """Train, evaluate and save; returns the metrics written to ``RUN/metrics.json``."""
    timer = StageTimer()
    run_dir = RunDir(config.run)
    manifest = read_finished_run(spark, run_dir)
    # Read before anything changes: a missing split file is a usage error (exit 2).
    split_map = (parse_split_file(storage.fetch_text(spark, config.split_file, "--split-file"),
                                  config.split_file) if config.split_file else None)
    # metrics.json marks a trained run, so it goes first and comes back last: a retrain
    # that fails halfway never leaves a new classifier beside old metrics.
    storage.delete(spark, run_dir.metrics)
    pca_model = PipelineModel.load(run_dir.pca_model)
    # The PCA table is small (k floats per image): Spark's default 200 shuffle partitions
    # for the split's window and the evaluation's groupBy would be 200 near-empty tasks
    # per stage (most of this job's time on a laptop).
    shuffle = {"spark.sql.shuffle.partitions": str(max(spark.sparkContext.defaultParallelism, 2))}
    with sql_conf(spark, shuffle):
        return _train(spark, config, manifest, pca_model, timer, split_map=split_map)


def _train(spark: SparkSession, config: TrainConfig, manifest: dict[str, Any],
           pca_model: PipelineModel, timer: StageTimer, *,
           split_map: dict[tuple[str, str], str] | None) -> dict[str, Any]:
    # Long because it is one job read top to bottom: split, fit, evaluate, write, and
    # the metrics.json that records all of it.
    run_dir = RunDir(config.run)
    pca = labelled_only(spark.read.parquet(run_dir.pca)).cache()
    try:
        with timer.stage("split"):
            unlisted = 0
            if split_map is not None:
                train, test, unlisted = split_by_file(spark, pca, split_map)
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
            model = fit_classifier(train, params)
        labels = labels_of(model)
        with timer.stage("evaluate"):
            test_pred = predict(model, test).cache()
            test_metrics = evaluate(test_pred, labels)
            train_metrics = evaluate(predict(model, train), labels)
        missing = sorted(set(labels) - {r["label"] for r in test.select("label").distinct().collect()})
        with timer.stage("write"):
            model.write().overwrite().save(run_dir.classifier)
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
        "model": {"type": "LogisticRegression(family=multinomial)", **asdict(params)},
        "pca_model_id": model_fingerprint(pca_model),
        "weights_sha256": manifest.get("weights", {}).get("sha256"),
        "preprocessing": manifest.get("preprocessing", {}).get("name"),
        "labels": labels,
        "accuracy": test_metrics["accuracy"],
        "macro_f1": test_metrics["macro_f1"],
        "test": test_metrics,
        "train": train_metrics,
        "timings_seconds": {**timer.seconds, "total": timer.total()},
    }
    storage.write_text(spark, run_dir.metrics, json.dumps(metrics, indent=2) + "\n")
    logger.info("classifier: test accuracy %.4f, macro-F1 %.4f on %d images",
                metrics["accuracy"], metrics["macro_f1"], n_test)
    return metrics
