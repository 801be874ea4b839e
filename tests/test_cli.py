"""The entry point as users run it: spark-submit and python, exit codes and messages."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import image_bytes, pattern_image, write

JOB = str(REPO / "jobs" / "featurize_images.py")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYSPARK_PYTHON"] = sys.executable
    e["PYSPARK_DRIVER_PYTHON"] = sys.executable
    e["PYTHONPATH"] = str(REPO)
    return e


def spark_submit() -> str:
    return str(Path(sys.executable).parent / "spark-submit")


def test_bad_flag_values_exit_2_without_starting_spark(tmp_path):
    proc = subprocess.run(
        [sys.executable, JOB, "--input", str(tmp_path), "--output", str(tmp_path / "o"),
         "--pca-k", "0"],
        capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 2
    assert "--pca-k 0 is out of range" in proc.stderr


def test_missing_required_flag_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, JOB, "--input", str(tmp_path)],
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 2 and "--output" in proc.stderr


@pytest.mark.spark
def test_python_entry_point_reports_missing_input(tmp_path):
    proc = subprocess.run(
        [sys.executable, JOB, "--input", str(tmp_path / "absent"), "--output",
         str(tmp_path / "o"), "--weights", "random"],
        capture_output=True, text=True, env=env(), timeout=300)
    assert proc.returncode == 2
    assert "is not a folder" in proc.stderr
    assert not (tmp_path / "o").exists()


def _worker_libraries(root: int, seen: dict[int, set[str]]) -> None:
    """Record which engine libraries each Python worker under ``root`` has mapped."""
    from bench.run import _children

    for pid in _children(root):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"pyspark.daemon" not in cmd and b"pyspark/daemon" not in cmd:
                continue
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        libs = seen.setdefault(pid, set())
        libs.update(lib for lib in ("libtensorflow", "libopenvino") if lib in maps)


@pytest.mark.spark
def test_spark_submit_runs_the_job(tmp_path, weights_spec):
    """A plain spark-submit (no log settings): the job's own lines, progress lines, no
    per-file INFO lines from Spark, and Python workers that run OpenVINO without ever
    loading TensorFlow (read from their memory maps while the job runs)."""
    import time

    for i in range(6):
        write(tmp_path / "in" / f"class{i % 2}" / f"{i}.png",
              image_bytes(pattern_image(i), "PNG"))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [spark_submit(), "--master", "local[2]", "--conf", "spark.ui.enabled=false", JOB,
         "--input", str(tmp_path / "in"), "--output", str(out), "--weights", weights_spec,
         "--pca-k", "2", "--files-per-partition", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**env(), "FEATURIZE_PROGRESS_SECONDS": "0.2"})
    seen: dict[int, set[str]] = {}
    while proc.poll() is None:
        _worker_libraries(proc.pid, seen)
        time.sleep(0.1)
    log = proc.stdout.read()
    assert proc.returncode == 0, log[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["counts"]["featurized"] == 6 and manifest["pca"]["k"] == 2
    assert manifest["spark"]["master"] == "local[2]"
    assert manifest["engine"]["name"] == "openvino" and manifest["engine"]["precision"] == "f32"
    assert any("libopenvino" in libs for libs in seen.values()), seen
    assert not any("libtensorflow" in libs for libs in seen.values()), seen
    assert re.search(r"featurize: [1-6]/6 images \(\d+%\), [\d.]+ images/s, ETA", log), log
    assert "Reading File path" not in log and " INFO Executor: Finished task" not in log
    assert "oneDNN custom operations" not in log.split("featurize.extract.job: input read by")[1]


def test_pca_k_wins_over_pca_variance():
    from jobs.featurize_images import config_from_args

    config = config_from_args(["--input", "a", "--output", "b", "--pca-k", "3",
                               "--pca-variance", "0.9"])
    assert config.pca_k == 3 and config.batch_size == 16


# A failed upload (exit 1, the run kept, how to finish it) is tested over real HTTP in
# tests/test_s3.py::test_a_failed_upload_keeps_the_run_and_resume_finishes_it.
