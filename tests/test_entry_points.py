"""The train and predict entry points (and featurize.review.summary) as the user runs them: as
processes, for their exit statuses (0 done, 1 the run failed, 2 a usage error) and what
they print; the stale-classifier cycle end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from featurize.inputs.sample import write_sample
from tests.conftest import REPO
from tests.test_cli import env

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def job(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "jobs" / script), *args],
                          capture_output=True, text=True, env=env(), timeout=600, cwd=REPO)


def test_train_and_predict_exit_statuses_and_the_stale_cycle(weights_spec, tmp_path: Path):
    images, new, run = tmp_path / "images", tmp_path / "new", tmp_path / "run"
    write_sample(str(images), per_class=3, with_broken=False)
    write_sample(str(new), per_class=1, with_broken=False, offset=40)
    pred = str(tmp_path / "pred")
    featurize = ("featurize_images.py", "--input", str(images), "--output", str(run),
                 "--weights", weights_spec, "--pca-k", "4")  # its IR is cached: no conversion
    steps = [
        # usage errors: exit 2, before any Spark work
        ("train, bad flag", 2, "--test-fraction 1.5 must be between 0 and 1",
         ("train_classifier.py", "--run", str(run), "--test-fraction", "1.5")),
        ("featurize", 0, "run complete: 30 inputs", featurize),
        ("train", 0, "test accuracy", ("train_classifier.py", "--run", str(run),
                                       "--test-fraction", "0.34")),
        ("predict", 0, "predictions:", ("predict_images.py", "--run", str(run), "--input",
                                        str(new), "--output", pred)),
        ("cluster, bad k", 2, "allow k up to 29",
         ("cluster_features.py", "--run", str(run), "--k", "30")),
        ("cluster", 0, "silhouette", ("cluster_features.py", "--run", str(run),
                                      "--k-min", "2", "--k-max", "3")),
        # a new input and a resume: PCA is rebuilt, the classifier marked stale
        ("featurize --resume", 0, "marked stale", (*featurize, "--resume")),
        ("predict, stale", 2, "the classifier is stale",
         ("predict_images.py", "--run", str(run), "--input", str(new), "--output", pred,
          "--overwrite")),
        ("train again", 0, "test accuracy", ("train_classifier.py", "--run", str(run),
                                             "--test-fraction", "0.34", "--reg-param", "0.001",
                                             "--no-calibrate")),
        # the run began and failed: exit 1 (a split that leaves no test image)
        ("train, empty test split", 1, "the split left",
         ("train_classifier.py", "--run", str(run), "--split-file", str(tmp_path / "split.csv"))),
    ]
    for what, status, says, argv in steps:
        if what == "featurize --resume":
            write_sample(str(images), per_class=4, with_broken=False)  # one more per digit
        if what == "train, empty test split":
            (tmp_path / "split.csv").write_text("".join(
                f"Training,{p.parent.name},{p.name}\n" for p in sorted(images.rglob("*.png"))))
        proc = job(*argv)
        log = proc.stdout + proc.stderr
        assert proc.returncode == status, f"{what}: {log[-3000:]}"
        assert says in log, f"{what}: {log[-3000:]}"
        assert "Traceback" not in log, what
        if what == "train":
            first = json.loads((run / "metrics.json").read_text())
            assert first["reg_param_search"]["auto"] and first["calibration"]["temperature"] > 0
            # one photo, no Spark, as a process (featurize.photo.predict_one)
            photo = sorted(new.rglob("*.png"))[0]
            one = subprocess.run([sys.executable, "-m", "featurize.photo.predict_one", "--run",
                                  str(run), "--json", str(photo)], capture_output=True,
                                 text=True, env=env(), timeout=300, cwd=REPO)
            assert one.returncode == 0, one.stderr[-3000:]
            answer = json.loads(one.stdout)
            assert answer["path"] == str(photo) and answer["label"] in first["labels"]
        if what == "cluster":
            clusters = json.loads((run / "clusters.json").read_text())
            assert clusters["images"] == 30 and clusters["k"] in (2, 3)
        if what == "train again":
            again = json.loads((run / "metrics.json").read_text())
            assert "stale" not in again
            assert again["model"]["reg_param"] == 0.001 and again["reg_param_search"] is None
            assert again["calibration"] == {"method": "none", "temperature": 1.0}
    # the summary, as make prints it
    summary = subprocess.run([sys.executable, "-m", "featurize.review.summary", str(run),
                              "--predictions", pred], capture_output=True, text=True,
                             env=env(), timeout=120, cwd=REPO)
    # (the featurize run is complete; the failed train removed metrics.json, its marker)
    assert summary.returncode == 0, summary.stderr
    assert "status        : complete" in summary.stdout
    assert "engine        : openvino " in summary.stdout
    assert "images        : 40 listed, 40 featurized, 0 failed" in summary.stdout
    assert "predictions   : 10 predicted, 0 failed" in summary.stdout
    assert not (run / "metrics.json").exists()
