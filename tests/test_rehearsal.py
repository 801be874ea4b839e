"""``python -m emr rehearse``: the EMR steps on a local YARN (Hadoop's MiniYARNCluster)
against a moto S3, with the nodes' Python built by the bootstrap script from the
uploaded wheelhouse. Each test runs the real command as a process.

Needs the rehearsal's jars (``make jars``) and the packaged dist/ with its wheelhouse
(``make package``); skipped without the jars outside CI, failed under
``FEATURIZE_REQUIRE_JARS=1``. The node venv is cached between runs (keyed by the
wheelhouse), so only the first run on a machine installs it.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from emr import package
from featurize.config import FeaturizeConfig
from featurize.extract.job import run
from featurize.inputs.sample import write_sample
from tests.conftest import REPO
from tests.helpers import assert_same_features
from tests.test_cli import env
from tests.test_s3a import require_jars

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]

STEP_LINE = re.compile(r"^step (\w+): (application_\d+_\d+|-) attempts=(\d+) final=(\w+) "
                       r"(\d+) s(?:; peak memory: (.*?))?(?:; nodes lost=(\d+))?"
                       r"(?:; killed for memory=(\d+))?$", re.MULTILINE)
MEMORY = re.compile(r"driver ([\d,]+) of ([\d,]+) MB, executors ([\d,]+) of ([\d,]+) MB "
                    r"\(largest of (\d+)\)")


@pytest.fixture(scope="module")
def dist():
    require_jars()
    missing = [r for r in package.artifacts(REPO / "dist") if not (REPO / "dist" / r).is_file()]
    if missing:
        pytest.fail(f"dist/ lacks {', '.join(missing)}: run make package (make rehearsal-test "
                    f"does)")
    return REPO / "dist"


def rehearse(*args: str, timeout: int = 1200) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "emr", "rehearse", *args], cwd=REPO,
                          env=env(), capture_output=True, text=True, timeout=timeout)
    print(proc.stdout[-6000:], proc.stderr[-3000:], sep="\n")
    return proc


def steps(stdout: str) -> dict[str, tuple[str, int, str]]:
    return {m.group(1): (m.group(2), int(m.group(3)), m.group(4))
            for m in STEP_LINE.finditer(stdout)}


def step_memory(stdout: str, job: str) -> tuple[tuple[int, int], tuple[int, int], int, int]:
    """((driver peak, size), (largest executor peak, its size), executors, nodes lost)."""
    m = next(m for m in STEP_LINE.finditer(stdout) if m.group(1) == job)
    mem = MEMORY.fullmatch(m.group(6) or "")
    assert mem, m.group(0)
    n = [int(g.replace(",", "")) for g in mem.groups()]
    return (n[0], n[1]), (n[2], n[3]), n[4], int(m.group(7))


@pytest.mark.spark
def test_featurize_and_train_on_yarn_equal_a_local_run(dist, spark, weights_spec, tmp_path):
    images = tmp_path / "digits"
    write_sample(str(images), per_class=3, with_broken=True)  # 30 images + 1 truncated
    out = tmp_path / "out"
    proc = rehearse("--input", str(images), "--out", str(out), "--steps", "featurize train",
                    "--weights", weights_spec, "--job-args", "--pca-k 8",
                    "--train-args", "--test-fraction 0.34", "--workdir",
                    str(tmp_path / "work"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = steps(proc.stdout)
    assert [(job, attempts, final) for job, (_, attempts, final) in ran.items()] == [
        ("featurize", 1, "SUCCEEDED"), ("train", 1, "SUCCEEDED")]
    # two nodes (CORE_COUNT's default) scaled to this machine, YARN's memory check on; each
    # step's containers measured against their sizes, the driver with an empty IR cache
    assert re.search(r"^YARN: 2 node\(s\) of \d+ MB, 4 vcores, physical-memory check on",
                     proc.stdout, re.MULTILINE)
    sizes = re.search(r"(\d+)m heap \+ (\d+)m Python; driver (\d+)m \+ (\d+)m", proc.stdout)
    heap, python, driver_heap, driver_overhead = map(int, sizes.groups())
    for job in ("featurize", "train"):
        driver, executor, executors, lost = step_memory(proc.stdout, job)
        assert driver[1] == driver_heap + driver_overhead == 3072
        assert executor[1] == heap + python and (executors, lost) == (2, 0)
        assert 300 < driver[0] < driver[1] and 300 < executor[0] < executor[1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["spark"]["master"] == "yarn"
    assert manifest["spark"]["app_id"] == ran["featurize"][0]
    assert manifest["io"] == {"input": "spark", "output": "spark"}
    counts = manifest["counts"]
    assert (counts["inputs"], counts["featurized"], counts["failed"]) == (31, 30, 1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"]["train"] + metrics["split"]["test"] == 30
    # the same images featurized here, from the local disk, by local Spark
    reference = tmp_path / "local"
    run(spark, FeaturizeConfig(input=str(images), output=str(reference), weights=weights_spec,
                               pca_k=8))
    assert_same_features(spark, out, "/input/digits/", reference, "/digits/", 30)
    errors = spark.read.parquet(str(out / "errors")).collect()
    assert [(r["path"].split("/input/digits/", 1)[1], r["error"]) for r in errors] == [
        ("7/broken_upload.png", "truncated")]


def test_a_failing_step_shows_one_attempt_and_the_jobs_own_error(dist, weights_spec,
                                                                   tmp_path):
    images = tmp_path / "forty"
    write_sample(str(images), per_class=4, with_broken=False)
    proc = rehearse("--input", str(images), "--steps", "featurize train", "--weights",
                    weights_spec, "--job-args", "--pca-k 100", "--workdir",
                    str(tmp_path / "work"))
    assert proc.returncode == 1
    ran = steps(proc.stdout)
    assert ran["featurize"][1:] == (1, "FAILED")
    assert ran["train"] == ("-", 0, "CANCELLED")
    assert "bad configuration: --pca-k 100 is larger than the 40 input images" in proc.stdout
    assert "the driver's output (the job's log)" in proc.stdout
    assert proc.stdout.index("attempts=1 final=FAILED") < proc.stdout.index("--pca-k 100 is")


def test_a_container_larger_than_the_node_is_refused_with_yarns_message(dist, weights_spec,
                                                                          tmp_path):
    """m5.xlarge's executor (3072m heap + 6144m for Python) on a node of 8192 MB."""
    images = tmp_path / "few"
    write_sample(str(images), per_class=1, with_broken=False)
    proc = rehearse("--input", str(images), "--steps", "featurize", "--weights", weights_spec,
                    "--node-mb", "8192", "--workdir", str(tmp_path / "work"), timeout=600)
    assert proc.returncode == 1
    job, attempts, final = steps(proc.stdout)["featurize"]
    assert final != "SUCCEEDED"
    assert re.search(r"above the max threshold \(8192 MB\) of this cluster|greater than "
                     r"maximum allowed allocation", proc.stdout), proc.stdout[-3000:]


def test_local_folders_are_uploaded_and_an_empty_s3_input_is_refused(tmp_path):
    from emr.rehearsal.run import _local_folders
    from emr.requests import JobArgs
    from emr.settings import Settings
    from featurize.errors import SettingsError

    (tmp_path / "a" / "photos").mkdir(parents=True)
    (tmp_path / "b" / "photos").mkdir(parents=True)
    settings = Settings(bucket="featurize-rehearsal", prefix="fz")
    args, uploads = _local_folders(settings, JobArgs(
        input=str(tmp_path / "a" / "photos"), predict_input=str(tmp_path / "b" / "photos")),
        None, None)
    assert (args.input, args.predict_input) == (
        "s3://featurize-rehearsal/fz/input/photos", "s3://featurize-rehearsal/fz/predict-input/photos")
    assert uploads == [(tmp_path / "a" / "photos", args.input),
                       (tmp_path / "b" / "photos", args.predict_input)]
    args, uploads = _local_folders(settings, JobArgs(input="s3://team/images/"),
                                   str(tmp_path / "a" / "photos"), None)
    assert args.input == "s3://team/images/" and uploads == [(tmp_path / "a" / "photos",
                                                              "s3://team/images/")]
    with pytest.raises(SettingsError, match="starts empty; give INPUT_FROM="):
        _local_folders(settings, JobArgs(input="s3://team/images/"), None, None)


@pytest.mark.spark
def test_a_node_lost_mid_featurize_costs_no_attempt_and_no_image(dist, spark, weights_spec,
                                                                  tmp_path):
    """LOSE_NODE=0.5 on two nodes: the node running an executor and not the driver is
    stopped once half the images are featurized; the step still succeeds in its one
    attempt, YARN counts the node lost, and every image lands once with the features of
    a clean run."""
    images = tmp_path / "four-hundred"
    write_sample(str(images), per_class=40, with_broken=False)
    out = tmp_path / "out"
    proc = rehearse("--input", str(images), "--out", str(out), "--steps", "featurize",
                    "--weights", weights_spec, "--nodes", "2", "--lose-node", "0.5",
                    "--job-args", "--pca-k 8 --files-per-partition 10",
                    "--workdir", str(tmp_path / "work"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    stopped = re.search(r"^LOSE_NODE: stopped node (\d) at (\d+)/400 images$", proc.stdout,
                        re.MULTILINE)
    assert stopped and 200 <= int(stopped.group(2)) < 400, proc.stdout[-3000:]
    assert steps(proc.stdout)["featurize"][1:] == (1, "SUCCEEDED")
    assert step_memory(proc.stdout, "featurize")[3] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert (counts["inputs"], counts["featurized"], counts["failed"]) == (400, 400, 0)
    # YARN told the driver why its executor went: a lost node, not the job's fault
    driver_logs = list((tmp_path / "work").rglob("container_*_01_000001/stderr"))
    assert len(driver_logs) == 1
    assert "Container released on a *lost* node" in driver_logs[0].read_text(errors="replace")
    rows = spark.read.parquet(str(out / "features")).select("path").collect()
    assert len(rows) == len({r["path"] for r in rows}) == 400
    reference = tmp_path / "local"
    run(spark, FeaturizeConfig(input=str(images), output=str(reference), weights=weights_spec,
                               pca_k=8))
    assert_same_features(spark, out, "/input/four-hundred/", reference, "/four-hundred/", 400)


def test_a_container_over_its_size_is_killed_by_yarn_as_on_emr(dist, weights_spec, tmp_path):
    """The physical-memory check is on: executors sized for openvino (512m heap + 3,072 MB
    for four workers) running four tensorflow workers (about 1.1 GB each) outgrow their
    containers, and YARN kills them with the message EMR users see (one node: the step
    fails sooner, its executor killed each time)."""
    images = tmp_path / "few"
    write_sample(str(images), per_class=3, with_broken=False)
    proc = rehearse("--input", str(images), "--steps", "featurize", "--weights", weights_spec,
                    "--nodes", "1", "--executor-memory", "512m",
                    "--job-args", "--pca-k 8 --engine tensorflow",
                    "--workdir", str(tmp_path / "work"))
    line = next(m for m in STEP_LINE.finditer(proc.stdout) if m.group(1) == "featurize")
    assert line.group(8) and int(line.group(8)) >= 1, proc.stdout[-3000:]
    assert re.search(r"^memory: container_\d+_\d+_01_\d+ peaked at [\d,]+ MB, over its "
                     r"3,584 MB container$", proc.stdout, re.MULTILINE)
    driver_log = next((tmp_path / "work").rglob("container_*_01_000001/stderr"))
    assert ("Container killed by YARN for exceeding physical memory limits"
            in driver_log.read_text(errors="replace"))
