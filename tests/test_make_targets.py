"""The Makefile's local targets as the README shows them, run as written (make, as
processes) with their variables: ``run-local`` and its summary lines, ``featurize``,
``train``, ``predict``, ``predict-one``, and the refusals the Makefile makes itself.
(``iam-policy`` and ``estimate`` need no Spark: tests/test_emr_first_run.py.)"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def make(target: str, *assignments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), target,
                           *assignments], capture_output=True, text=True, timeout=900)


def summary(stdout: str) -> dict[str, str]:
    """``key : value`` lines of featurize.review.summary's output."""
    found = {}
    for line in stdout.splitlines():
        m = re.match(r"^([a-z][a-z /()]*?)\s+: (.*)$", line)
        if m:
            found.setdefault(m.group(1), m.group(2))
    return found


def readme_summary_keys() -> list[str]:
    """The keys of the summary the README shows under `make run-local`."""
    text = (REPO / "README.md").read_text()
    block = text.split("further digits into `runs/local-predictions/` and prints:", 1)[1]
    block = block.split("```", 2)[1]
    return [k for k in summary(block)]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str], list[str]]:
    """``make run-local`` with the sample and the output in a temporary folder."""
    tmp = tmp_path_factory.mktemp("make")
    where = [f"SAMPLE={tmp / 'sample'}", f"NEW_SAMPLE={tmp / 'sample-new'}",
             f"OUTPUT={tmp / 'local'}"]
    proc = make("run-local", *where)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, proc, where


def test_run_local_prints_the_readmes_summary(local_run):
    tmp, proc, _ = local_run
    got = summary(proc.stdout)
    keys = readme_summary_keys()
    assert len(keys) >= 8 and [k for k in got if k in keys] == keys, (keys, list(got))
    assert got["run directory"] == str(tmp / "local")
    assert got["status"] == "complete"
    assert got["input"] == f"file:{tmp / 'sample'}"
    assert got["images"] == "601 listed, 600 featurized, 1 failed {'truncated': 1}"
    assert got["classifier"].startswith("test accuracy ")
    assert got["classifier"].endswith("(480 train / 120 test images, stratified split)")
    # PREDICT_INPUT defaults to NEW_SAMPLE when INPUT is the sample; PREDICT_OUTPUT to
    # OUTPUT-predictions
    assert got["predictions"] == ("50 predicted, 1 failed {'truncated': 1} -> "
                                  f"{tmp / 'local-predictions' / 'predictions'}")


def test_train_predict_and_predict_one_with_their_variables(local_run):
    tmp, _, _ = local_run
    run, new = tmp / "local", tmp / "sample-new"
    # the Makefile's own refusals: exit 2 before any Spark
    same = make("predict", f"RUN={run}", f"INPUT={new}", f"OUTPUT={run}")
    assert same.returncode == 2
    assert "make predict: give OUTPUT=, a folder other than RUN" in same.stderr
    no_image = make("predict-one", f"RUN={run}")
    assert no_image.returncode == 2 and "make predict-one: give IMAGE=" in no_image.stderr

    trained = make("train", f"RUN={run}", "TRAIN_ARGS=--test-fraction 0.25 --reg-param 0.01")
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"]["test"] == 150 and metrics["model"]["reg_param"] == 0.01
    assert "(450 train / 150 test images, stratified split)" in summary(trained.stdout)[
        "classifier"]

    out = tmp / "again"
    predicted = make("predict", f"RUN={run}", f"INPUT={new}", f"OUTPUT={out}")
    assert predicted.returncode == 0, predicted.stdout[-3000:] + predicted.stderr[-3000:]
    assert summary(predicted.stdout)["predictions"].startswith(
        "50 predicted, 1 failed {'truncated': 1} -> ")
    rows = {r["path"]: r for r in _parquet_rows(out / "predictions")}
    assert len(rows) == 50

    photo = new / "3" / "3_060.png"
    one = make("predict-one", f"RUN={run}", f"IMAGE={photo}",
               "PREDICT_ONE_ARGS=--json --top 3")
    assert one.returncode == 0, one.stderr
    answer = json.loads(one.stdout.splitlines()[-1])
    job = rows[f"file:{photo}"]
    assert answer["label"] == job["predicted_label"] and len(answer["top"]) == 3
    assert answer["confidence"] == pytest.approx(job["confidence"], abs=1e-5)


def test_featurize_with_sse_and_job_args(local_run):
    tmp, _, _ = local_run
    out = tmp / "featurized"
    proc = make("featurize", f"INPUT={tmp / 'sample-new'}", f"OUTPUT={out}", "SSE=AES256",
                "JOB_ARGS=--pca-k 4 --batch-size 8")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["encryption"] == {"algorithm": "AES256", "kms_key_id": None}
    assert manifest["pca"]["k"] == 4 and manifest["model"]["batch_size"] == 8
    assert summary(proc.stdout)["images"] == "51 listed, 50 featurized, 1 failed {'truncated': 1}"


def _parquet_rows(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
