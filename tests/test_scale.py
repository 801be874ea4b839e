"""The job at a cluster's shape on this machine: a cluster's parallelism (hundreds of
partitions) with EMR's 1 GiB driver heap, as spark-submit processes."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from featurize.config import FeaturizeConfig
from featurize.extract import job
from featurize.inputs.sample import write_sample
from tests.conftest import REPO
from tests.test_cli import env, spark_submit

pytestmark = [pytest.mark.spark, pytest.mark.integration]

JOB = str(REPO / "jobs" / "featurize_images.py")


def featurize(images: Path, out: Path, weights: str, *conf: str) -> dict:
    """The job under spark-submit with EMR's 1 GiB driver heap, read by Spark's scan (one
    file a partition at this parallelism: the most moment matrices)."""
    proc = subprocess.run(
        [spark_submit(), "--master", "local[2]", "--driver-memory", "1g",
         "--conf", "spark.ui.enabled=false", *conf, JOB, "--input", str(images),
         "--output", str(out), "--weights", weights, "--pca-k", "16", "--reader", "scan"],
        capture_output=True, text=True, env=env(), timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "manifest.json").read_text())


def pca_numbers(spark, run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from pyspark.ml import PipelineModel

    scaler, pca = PipelineModel.load(str(run / "models" / "pca")).stages
    return scaler.mean.toArray(), scaler.std.toArray(), pca.pc.toArray()


def test_pca_at_400_partitions_with_a_1g_driver_equals_the_default_run(
        spark, weights_spec, tmp_path):
    """At spark.default.parallelism=400 the features/ read has ~400 partitions, each
    with its 13 MB moment matrix: collected on the driver that was 5 GB and an
    OutOfMemoryError in a 1 GiB heap after the whole CNN pass. Merged on the executors,
    the run completes and its PCA equals the default run's within 1e-6 (that one read
    by the workers, so the two readers agree too)."""
    images = tmp_path / "images"
    write_sample(str(images), per_class=20, with_broken=False)  # 200 images
    wide = featurize(images, tmp_path / "wide", weights_spec,
                     "--conf", "spark.default.parallelism=400")
    plain = job.run(spark, FeaturizeConfig(input=str(images), output=str(tmp_path / "plain"),
                                           weights=weights_spec, pca_k=16))
    assert wide["status"] == plain["status"] == "complete"
    assert wide["spark"]["default_parallelism"] == 400
    assert wide["counts"]["featurized"] == plain["counts"]["featurized"] == 200
    parts = list((tmp_path / "wide" / "features").glob("part-*.parquet"))
    # one image a file, one file a partition of the read PCA fits on: 200 x 13 MB
    assert len(parts) == 200
    np.testing.assert_allclose(wide["pca"]["explained_variance"],
                               plain["pca"]["explained_variance"], rtol=0, atol=1e-6)
    (m1, s1, pc1), (m2, s2, pc2) = (pca_numbers(spark, tmp_path / r) for r in ("wide", "plain"))
    np.testing.assert_allclose(m1, m2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s1, s2, rtol=1e-6, atol=1e-6)
    signs = np.sign(np.sum(pc1 * pc2, axis=0))
    np.testing.assert_allclose(pc1, pc2 * signs, rtol=0, atol=1e-6)


def submit(images: Path, out: Path, weights: str, *args: str) -> tuple[dict, str]:
    proc = subprocess.run(
        [spark_submit(), "--master", "local[2]", "--conf", "spark.ui.enabled=false", JOB,
         "--input", str(images), "--output", str(out), "--weights", weights, *args],
        capture_output=True, text=True, env=env(), timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "manifest.json").read_text()), proc.stderr


def test_a_task_of_the_workers_carries_no_file_list(tmp_path):
    """20,000 files in two tasks of 10,000: Spark's scan ships each task its file list
    (~130 bytes a file) and warns of a task over 1 MB; read by the workers, a task's
    rows come from a shuffle of the keys and the same plan makes small tasks, which is
    what lets a task (and its features/ file) hold 16,384 images. Tiny non-images keep
    the CNN out of it (each becomes a not_an_image row); 20 real ones fit the PCA."""
    images = tmp_path / "images"
    write_sample(str(images), per_class=2, with_broken=False)
    for i in range(20_000):
        folder = images / f"c{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file_{i:06d}.jpg").write_bytes(b"x")
    warning = re.compile(r"task of very large size \((\d+)(?:\.\d+)? KiB\)")
    for reader, warned in (("scan", True), ("workers", False)):
        manifest, stderr = submit(images, tmp_path / reader, "random", "--reader", reader,
                                  "--files-per-partition", "16384", "--pca-k", "1")
        assert manifest["status"] == "complete"
        assert manifest["spark"]["reader"] == reader
        assert manifest["spark"]["partitions_planned"] == 2
        assert manifest["counts"]["featurized"] == 20
        assert manifest["counts"]["failed_by_reason"] == {"not_an_image": 20_000}
        sizes = [int(k) for k in warning.findall(stderr)]
        assert bool(sizes) is warned, sizes
        if warned:
            assert min(sizes) > 1000  # KiB: two tasks of 10,000 paths each
