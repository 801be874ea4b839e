"""The predict job: new images → the run's featurizer → its PCA model → its classifier.

Writes ``OUTPUT/predictions/`` (``path, predicted_label, confidence, probabilities``),
``OUTPUT/errors/`` (as the featurize job) and ``OUTPUT/manifest.json`` (last).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession

from featurize.classifier.classify import labels_of, predict
from featurize.config import (
    DEFAULT_EXTENSIONS, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, FeaturizeConfig,
    refuse_credentials,
)
from featurize.encryption import Encryption
from featurize.errors import ConfigError, JobError
from featurize.extract.featurize_pass import start_pass, start_warm_up, write_errors
from featurize.extract.pipeline import features_rows
from featurize.inputs.read import list_inputs
from featurize.manifest import StageTimer, header, utc_now
from featurize.model.engines import WorkerSpec, check_same_engine, prepare_for
from featurize.model.preprocess import Preprocessing
from featurize.model.run_checks import check_compatible, run_preprocessing, run_weights_spec
from featurize.reduce.pca import model_fingerprint, project
from featurize.rundir import PREDICTIONS_COLUMNS, RunDir
from featurize.sparkconf import task_cpus
from featurize.storage import filesystem
from featurize.storage.output import RunOutput, read_finished_run

logger = logging.getLogger(__name__)

PREDICTIONS_SCHEMA = ("struct<path:string,predicted_label:string,confidence:double,"
                      "probabilities:map<string,double>>")


@dataclass(frozen=True)
class PredictConfig:
    """Options of ``jobs/predict_images.py``."""

    run: str
    input: str
    output: str
    batch_size: int = 16
    overwrite: bool = False
    extensions: tuple[str, ...] = field(default=DEFAULT_EXTENSIONS)
    max_pixels: int = DEFAULT_MAX_PIXELS
    threads: int | None = None
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    engine: str | None = None
    precision: str | None = None
    #: Apply the temperature the classifier was calibrated with (``--no-calibrate``: 1).
    calibrate: bool = True
    encryption: Encryption = field(default_factory=Encryption)

    def __post_init__(self) -> None:
        for flag, uri in (("--run", self.run), ("--input", self.input),
                          ("--output", self.output)):
            refuse_credentials(flag, uri)

    def featurize_config(self, manifest: dict[str, Any]) -> FeaturizeConfig:
        """The featurize settings for the new images: the run's weights, preprocessing
        (crop or squash, size) and engine, our I/O.

        Raises
        ------
        ConfigError
            ``engine`` or ``precision`` was given and differs from the run's.
        """
        w = manifest["weights"]
        # A run from before engines were recorded ran TensorFlow at f32.
        recorded = manifest.get("engine") or {"name": "tensorflow", "precision": "f32"}
        engine = self.engine or recorded["name"]
        precision = self.precision or recorded["precision"]
        check_same_engine(recorded, engine, precision, f"the run {self.run}")
        pre = run_preprocessing(manifest)
        weights = run_weights_spec(manifest)
        return FeaturizeConfig(
            input=self.input, output=self.output, weights=weights,
            seed=w.get("seed") or 0, batch_size=self.batch_size, overwrite=self.overwrite,
            extensions=self.extensions, max_pixels=self.max_pixels, threads=self.threads,
            pca_k=None, max_file_bytes=self.max_file_bytes, preprocess=pre.mode,
            decode=pre.decode, image_size=pre.size, engine=engine, precision=precision,
            encryption=self.encryption,
        )


def run(spark: SparkSession, config: PredictConfig) -> dict[str, Any]:
    """Predict labels for ``config.input``; returns the manifest written to OUTPUT."""
    timer = StageTimer()
    started = utc_now()
    run_dir = RunDir(config.run)
    manifest_run = read_finished_run(spark, run_dir)
    if not filesystem.exists(spark, run_dir.metrics):
        raise ConfigError(f"{config.run} has no trained classifier (metrics.json missing); "
                          f"run jobs/train_classifier.py --run {config.run} first.")
    metrics = json.loads(filesystem.read_text(spark, run_dir.metrics))
    fconfig = config.featurize_config(manifest_run)
    in_mode = filesystem.io_mode(spark, config.input, "--input")
    output = RunOutput(spark, config.output, config.overwrite, encryption=config.encryption)
    output.check()
    pca_model = PipelineModel.load(run_dir.pca_model)
    classifier = PipelineModel.load(run_dir.classifier)
    with timer.stage("list_inputs"):
        # A single image is a valid input to predict (not to featurize: no labels).
        listing = list_inputs(spark, fconfig, in_mode, folder=False)
    threads = fconfig.threads or task_cpus(spark)
    warming = start_warm_up(spark, WorkerSpec(fconfig.engine, fconfig.precision,
                                              config.batch_size, threads, fconfig.image_size))
    with timer.stage("prepare_engine"):
        weights, engine = prepare_for(fconfig)
    check_compatible(manifest_run, metrics, model_fingerprint(pca_model), weights)
    # A run trained before calibration existed has no temperature: its own probabilities.
    temperature = (metrics.get("calibration") or {}).get("temperature", 1.0) \
        if config.calibrate else 1.0

    manifest: dict[str, Any] = {
        **header("predict_images", {**asdict(config), "extensions": list(config.extensions)},
                 started),
        "run": config.run,
        "weights": weights.to_manifest(),
        "engine": engine.to_manifest(),
        "preprocessing": Preprocessing.of(fconfig).to_manifest(),
        "pca_model_id": metrics["pca_model_id"],
        "labels": labels_of(classifier),
        "calibration": {"temperature": temperature, "applied": temperature != 1.0},
        "input": {"uri": config.input, "root": listing.root},
        "io": {"input": in_mode, "output": output.mode},
        "spark": {},
        "counts": {"inputs": listing.n_inputs},
        "timings_seconds": timer.seconds,
        "outputs": dict(RunDir.PREDICT_OUTPUTS),
    }
    with output.recorded(manifest, timer) as out:
        with start_pass(spark, fconfig, listing, engine, threads=threads, warming=warming,
                        timer=timer) as fz:
            manifest["spark"].update(fz.planned())
            with timer.stage("featurize_predict"), fz.confs(), fz.progress("predict"):
                scored = predict(classifier, project(pca_model, features_rows(fz.observed)),
                                 temperature)
                scored.select(*PREDICTIONS_COLUMNS).write.mode("errorifexists").parquet(
                    out.predictions)
            with timer.stage("errors_write"):
                n_ok, by_reason = write_errors(spark, fz, listing, out.errors)
            manifest["spark"]["partitions_used"] = fz.partitions_used
        manifest["counts"].update({"predicted": n_ok, "failed": sum(by_reason.values()),
                                   "failed_by_reason": dict(sorted(by_reason.items()))})
        if n_ok + manifest["counts"]["failed"] != listing.n_inputs:
            raise JobError("predicted + failed != inputs; the input changed during the run?")
    logger.info("predicted %d images into %s", n_ok, config.output)
    return manifest
