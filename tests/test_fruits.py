"""A run over a few hundred real Fruits-360 images from ../shared (skipped without it)."""
from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from featurize.config import FeaturizeConfig
from featurize.extract.job import run
from tests.conftest import FRUITS, require_imagenet, require_shared

pytestmark = [pytest.mark.spark, pytest.mark.shared]

CLASSES = 5
PER_CLASS = 60


@pytest.fixture(scope="module")
def fruits_subset(spark, weights_spec, tmp_path_factory):
    """Five classes of 60 Fruits-360 images, featurized: ``(classes, manifest, out)``."""
    require_shared(FRUITS)
    tmp_path = tmp_path_factory.mktemp("fruits")
    classes = sorted(p for p in FRUITS.iterdir() if p.is_dir())[:CLASSES]
    src = tmp_path / "fruits"
    for cls in classes:
        (src / cls.name).mkdir(parents=True)
        for f in sorted(cls.glob("*.jpg"))[:PER_CLASS]:
            shutil.copyfile(f, src / cls.name / f.name)

    out = tmp_path / "run"
    return classes, run(spark, FeaturizeConfig(input=str(src), output=str(out),
                                               weights=weights_spec)), out


def test_fruits_subset_end_to_end(spark, fruits_subset):
    classes, manifest, out = fruits_subset
    n = CLASSES * PER_CLASS
    assert manifest["status"] == "complete"
    assert manifest["counts"]["inputs"] == n
    assert manifest["counts"]["featurized"] == n and manifest["counts"]["failed"] == 0
    features = spark.read.parquet(str(out / "features")).toPandas()
    assert Counter(features["label"]) == {c.name: PER_CLASS for c in classes}
    pca = manifest["pca"]
    assert pca["requested_variance"] == 0.95
    assert pca["cumulative_explained_variance"][-1] >= 0.95
    assert 1 <= pca["k"] < n
    assert manifest["spark"]["partitions_used"] == manifest["spark"]["partitions_planned"]


def test_imagenet_features_separate_the_fruits(spark, fruits_subset):
    """Leave-one-out nearest centroid on the CNN features."""
    require_imagenet()
    features = spark.read.parquet(str(fruits_subset[2] / "features")).toPandas()
    x = np.stack(features["features"].to_numpy())
    y = features["label"].to_numpy()
    correct = 0
    for i in range(len(x)):
        mask = np.arange(len(x)) != i
        centroids = {c: x[mask & (y == c)].mean(axis=0) for c in set(y)}
        pred = min(centroids, key=lambda c: np.linalg.norm(x[i] - centroids[c]))
        correct += pred == y[i]
    assert len(x) == CLASSES * PER_CLASS and correct / len(x) >= 0.95


@pytest.mark.slow
@pytest.mark.integration
def test_fruits_classifier_on_the_datasets_own_split(spark, weights_spec, tmp_path):
    """All 6,821 images, the dataset's split_manifest.csv: test accuracy >= 0.98, ECE after
    calibration <= 0.03."""
    from featurize.classifier import train

    require_shared(FRUITS)
    require_imagenet()
    out = tmp_path / "run"
    manifest = run(spark, FeaturizeConfig(input=str(FRUITS), output=str(out),
                                          weights=weights_spec))
    assert manifest["counts"]["inputs"] == 6821 and manifest["counts"]["failed"] == 0
    metrics = train.run(spark, train.TrainConfig(
        run=str(out), split_file=str(FRUITS / "split_manifest.csv")))
    assert metrics["split"]["train"] == 5107 and metrics["split"]["test"] == 1714
    assert metrics["split"]["not_in_split_file"] == 0
    assert metrics["test"]["n"] == 1714
    assert metrics["accuracy"] >= 0.98, metrics["test"]["confusion_matrix"]
    # With the defaults (regParam by cross-validation, a fitted temperature), the test
    # split's confidences are honest: ECE <= 0.03, or no worse than uncalibrated.
    assert metrics["reg_param_search"]["auto"]
    # Every held-out training image is right here: no temperature is determined, T = 1 kept.
    cal = metrics["calibration"]
    assert cal["method"] == "temperature" or ("reason" in cal and cal["temperature"] == 1.0)
    assert metrics["ece"]["after"] <= 0.03, metrics["ece"]
    if cal["temperature"] == 1.0:
        assert metrics["ece"]["after"] == metrics["ece"]["before"]
    assert metrics["top5_accuracy"] >= metrics["accuracy"]

    # predict_one (no Spark) answers as the predict job does, on 5 test images per class
    from featurize.classifier import predict
    from tests.helpers import assert_one_photo_agrees

    rows = [line.split(",") for line in
            (FRUITS / "split_manifest.csv").read_text().splitlines() if line.strip()]
    picked = tmp_path / "new"  # split_manifest.csv: split,class,file
    for cls in sorted(p.name for p in FRUITS.iterdir() if p.is_dir()):
        for name in sorted(f for split, c, f in rows if split == "Test" and c == cls)[:5]:
            (picked / cls).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(FRUITS / cls / name, picked / cls / name)
    files = sorted(picked.rglob("*.jpg"))
    assert len(files) == 50
    predict.run(spark, predict.PredictConfig(run=str(out), input=str(picked),
                                             output=str(tmp_path / "pred")))
    rows = spark.read.parquet(str(tmp_path / "pred" / "predictions")).collect()
    assert assert_one_photo_agrees(out, rows, files) == 50
