"""Featurize → train → predict → report → notebook, on the embedded sample."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.photos import phone_photo
from featurize.config import FeaturizeConfig
from featurize.errors import ConfigError
from featurize.inputs.sample import write_sample
from tests.conftest import REPO
from tests.conftest import SAMPLE_PER_CLASS as PER_CLASS
from tests.conftest import require_imagenet
from tests.helpers import assert_one_photo_agrees, write

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def trained_run(trained_sample_run):
    return trained_sample_run


def test_metrics_and_model(spark, trained_run):
    run_dir, metrics = trained_run
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["accuracy"] == metrics["accuracy"]
    # 60 labelled images per digit: 12 per class held out (round(60 * 0.2)).
    assert metrics["split"]["train"] == 480 and metrics["split"]["test"] == 120
    assert metrics["labels"] == [str(d) for d in range(10)]
    assert metrics["test"]["n"] == 120 and metrics["train"]["n"] == 480
    assert all(metrics["test"]["per_class"][str(d)]["support"] == 12 for d in range(10))
    assert np.asarray(metrics["test"]["confusion_matrix"]).sum() == 120
    assert len(metrics["pca_model_id"]) == 64
    assert (run_dir / "models" / "classifier" / "metadata").is_dir()
    assert spark.read.parquet(str(run_dir / "test_predictions")).count() == 120


def test_leakage_is_counted_as_numpy_counts_it(trained_run):
    """metrics.json's leakage: each test image's best cosine to a training image of
    RUN/pca, counted and its median taken, as NumPy's brute force does it."""
    import pyarrow.parquet as pq

    from featurize.review.summary import format_confidence

    run_dir, metrics = trained_run
    pca = pq.read_table(run_dir / "pca").to_pandas()
    pca = pca[pca["label"].notna()]
    test = set(pq.read_table(run_dir / "test_predictions").to_pandas()["path"])
    x = np.stack(pca["pca_features"].to_numpy()).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    is_test = pca["path"].isin(test).to_numpy()
    best = (x[is_test] @ x[~is_test].T).max(axis=1)
    leak = metrics["leakage"]
    assert leak["threshold"] == 0.95 and leak["test_images"] == 120 == is_test.sum()
    assert leak["leaked"] == int((best >= 0.95).sum())
    assert leak["median_nearest"] == pytest.approx(float(np.median(best)), abs=0.01)
    assert len(leak["examples"]) == min(10, leak["leaked"])
    assert any(line.startswith(f"leakage       : {leak['leaked']} of 120 test images")
               for line in format_confidence(metrics))


def test_the_sample_is_classified_with_imagenet_weights(trained_run):
    require_imagenet()
    metrics = trained_run[1]
    assert metrics["accuracy"] >= 0.90, metrics["test"]["confusion_matrix"]


def test_regularisation_and_temperature_are_chosen_and_recorded(spark, trained_run):
    from featurize.classifier.classify import REG_GRID
    from tests.test_calibration import ece_of

    run_dir, metrics = trained_run
    search = metrics["reg_param_search"]
    assert search["auto"] and search["folds"] == 3
    assert [s["reg_param"] for s in search["scores"]] == list(REG_GRID)
    best = min(search["scores"], key=lambda s: s["log_loss"])["reg_param"]
    assert metrics["model"]["reg_param"] == search["chosen"] == best
    cal = metrics["calibration"]
    assert cal["method"] == "temperature" and cal["images"] == 480  # every training image
    # test_predictions holds calibrated confidences: the ECE after calibration, recomputed
    # from them by a plain loop, is the one recorded.
    rows = spark.read.parquet(str(run_dir / "test_predictions")).collect()
    recomputed = ece_of([r["confidence"] for r in rows],
                        [r["label"] == r["predicted_label"] for r in rows])
    assert metrics["ece"]["after"] == pytest.approx(recomputed, abs=1e-9)
    assert set(metrics["brier"]) == {"before", "after"}
    bins = metrics["confidence"]["reliability"]
    assert sum(b["count"] for b in bins["before"]) == sum(b["count"] for b in bins["after"]) == 120
    assert metrics["top5_accuracy"] >= metrics["accuracy"]  # 10 labels



@pytest.mark.parametrize("case", ["over-confident", "under-confident"])
def test_train_calibrates_a_run_built_to_be_miscalibrated(spark, trained_run, tmp_path, case):
    """The sample run with its pca/ replaced by Gaussian blobs whose regression is known
    to be miscalibrated: barely regularised on few images in many dimensions (over-
    confident, T > 1), or regularised hard on well-separated ones (under-confident, T < 1).
    train's temperature must bring the test split's ECE well down, in metrics.json and in
    the test_predictions it writes."""
    from featurize.classifier import train
    from tests.test_calibration import ece_of

    run_dir = shutil.copytree(trained_run[0], tmp_path / "run")
    k = len(spark.read.parquet(str(run_dir / "pca")).first()["pca_features"])
    # (images per class, dimensions that carry noise (the rest of the k are 0), distance
    # of the class centres, regParam)
    per_class, noisy, distance, reg = (60, 40, 2.0, 1e-3) if case == "over-confident" \
        else (150, 8, 3.0, 1.0)
    rng = np.random.default_rng(1)
    rows = []
    for c in range(4):
        for i in range(per_class):
            x = np.zeros(k)
            x[:noisy] = rng.normal(0.0, 1.0, noisy)
            x[c] += distance
            rows.append((f"file:/blobs/c{c}/{i}.jpg", f"c{c}", x.tolist()))
    shutil.rmtree(run_dir / "pca")
    spark.createDataFrame(rows, "path string, label string, pca_features array<float>") \
        .write.parquet(str(run_dir / "pca"))

    metrics = train.run(spark, train.TrainConfig(run=str(run_dir), reg_param=reg,
                                                 test_fraction=0.3))
    t = metrics["calibration"]["temperature"]
    assert metrics["calibration"]["method"] == "temperature", metrics["calibration"]
    assert (t > 1.5) if case == "over-confident" else (t < 0.7), t
    ece = metrics["ece"]
    assert ece["before"] > 0.15 and ece["after"] < ece["before"] / 2, ece
    assert metrics["confidence"]["nll"]["after"] < metrics["confidence"]["nll"]["before"]
    tested = spark.read.parquet(str(run_dir / "test_predictions")).collect()
    assert len(tested) == metrics["split"]["test"] == 4 * round(per_class * 0.3)
    assert ece["after"] == pytest.approx(ece_of(
        [r["confidence"] for r in tested], [r["label"] == r["predicted_label"] for r in tested]),
        abs=1e-9)


def test_exported_classifier_equals_the_spark_chain(spark, trained_run):
    """models/classifier.npz gives the Spark pipeline's calibrated probabilities on the
    test split (<= 1e-6), from the CNN features alone."""
    from featurize.classifier.export import ExportedClassifier

    run_dir, metrics = trained_run
    exported = ExportedClassifier.from_bytes((run_dir / "models" / "classifier.npz").read_bytes())
    assert exported.labels == tuple(metrics["labels"])
    assert exported.pca_model_id == metrics["pca_model_id"]
    assert exported.temperature == metrics["calibration"]["temperature"] != 1.0
    assert exported.weights_sha256 == metrics["weights_sha256"]
    assert exported.preprocessing == metrics["preprocessing"]
    from pyspark.ml import PipelineModel
    from pyspark.sql import functions as F

    from featurize.classifier.classify import predict

    features = {r["path"]: r["features"] for r in
                spark.read.parquet(str(run_dir / "features")).select("path", "features").collect()}
    pca = {r["path"]: r["pca_features"] for r in spark.read.parquet(str(run_dir / "pca")).collect()}
    test = {r["path"]: r for r in spark.read.parquet(str(run_dir / "test_predictions")).collect()}
    # the Spark ML pipeline on the test split, with the run's temperature
    rows = predict(PipelineModel.load(str(run_dir / "models" / "classifier")),
                   spark.read.parquet(str(run_dir / "pca")).where(F.col("path").isin(list(test))),
                   metrics["calibration"]["temperature"]).collect()
    assert len(rows) == 120
    assert all(r["confidence"] == test[r["path"]]["confidence"] for r in rows)
    x = np.array([features[r["path"]] for r in rows], dtype=np.float32)
    np.testing.assert_allclose(exported.pca_features(x), [pca[r["path"]] for r in rows],
                               rtol=0, atol=1e-5)
    got = exported.probabilities(x)
    spark_p = np.array([[r["probabilities"][label] for label in exported.labels] for r in rows])
    assert np.abs(got - spark_p).max() <= 1e-6
    assert [exported.labels[i] for i in got.argmax(axis=1)] == [r["predicted_label"] for r in rows]


@pytest.fixture(scope="module")
def clustered_run(spark, trained_run, tmp_path_factory):
    """A copy of the trained run, clustered (k = 9..10, 2 restarts): ``(run_dir, summary)``."""
    from featurize.review import clusters

    run_dir = shutil.copytree(trained_run[0], tmp_path_factory.mktemp("clustered") / "run")
    summary = clusters.run(spark, clusters.ClusterConfig(run=str(run_dir), k_min=9, k_max=10,
                                                            restarts=2))
    return Path(run_dir), summary


def test_cluster_features(spark, clustered_run):
    """KMeans over k = 9..10 on the sample's PCA features: the recorded silhouette is
    scikit-learn's on the written assignment, k follows the restarts' silhouettes, ARI and
    purity are sklearn's and a loop's on the same rows."""
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    from featurize.review import clusters

    run_dir, summary = clustered_run
    assert json.loads((run_dir / "clusters.json").read_text()) == summary
    df = spark.read.parquet(str(run_dir / "clusters"))
    assert df.columns == list(clusters.CLUSTERS_COLUMNS)
    assert dict(df.dtypes) == {"path": "string", "label": "string", "cluster": "int",
                               "distance": "double"}
    rows = {r["path"]: r for r in df.collect()}
    pca = {r["path"]: r["pca_features"] for r in spark.read.parquet(str(run_dir / "pca")).collect()}
    assert set(rows) == set(pca) and summary["images"] == len(rows) == 600
    scores = {c["k"]: c["silhouette"] for c in summary["candidates"]}
    assert list(scores) == [9, 10] and summary["k_rule"] == "one standard deviation"
    for c in summary["candidates"]:
        assert len(c["silhouettes"]) == 2 and c["silhouette"] in c["silhouettes"]
        assert c["silhouette_mean"] == pytest.approx(np.mean(c["silhouettes"]), abs=1e-12)
        assert c["silhouette_sd"] == pytest.approx(np.std(c["silhouettes"]), abs=1e-12)
    assert summary["k"] == clusters.choose_k({c["k"]: c["silhouettes"]
                                              for c in summary["candidates"]})
    paths = sorted(rows)
    x = np.array([pca[p] for p in paths], dtype=np.float64)
    found = np.array([rows[p]["cluster"] for p in paths])
    truth = np.array([rows[p]["label"] for p in paths])
    assert set(found) == set(range(summary["k"]))
    assert summary["cluster_sizes"] == [int(np.sum(found == c)) for c in range(summary["k"])]
    assert summary["silhouette"] == pytest.approx(
        silhouette_score(x, found, metric="cosine"), abs=1e-6)
    assert summary["adjusted_rand_index"] == pytest.approx(adjusted_rand_score(truth, found),
                                                           abs=1e-12)
    # each image's distance is 1 - cos to its own cluster's centre, which at convergence
    # points along the mean of its members' unit vectors
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    for c in range(summary["k"]):
        centre = unit[found == c].mean(axis=0)
        d = 1 - unit[found == c] @ (centre / np.linalg.norm(centre))
        got = np.array([rows[p]["distance"] for p in np.array(paths)[found == c]])
        assert np.abs(got - d).max() <= 1e-3
    assert summary["purity"] == pytest.approx(sum(
        max(np.sum((found == c) & (truth == t)) for t in set(truth))
        for c in range(summary["k"])) / len(paths))


@pytest.fixture(scope="module")
def predicted_new(spark, trained_run, tmp_path_factory):
    """Unseen digits, a broken file and two phone photos, through the predict job:
    ``(new, phones, out, manifest)``."""
    from featurize.classifier import predict

    run_dir, _ = trained_run
    tmp_path = tmp_path_factory.mktemp("predicted")
    new = tmp_path / "new"
    write_sample(str(new), per_class=5, offset=PER_CLASS)  # unseen digits + 1 broken file
    # two digits as a phone saves them (1536 and 2048 px, noise, JPEG 90): drafted at 1/4
    phones = [new / "3" / "phone0.jpg", new / "8" / "phone1.jpg"]
    for seed, (photo, side) in enumerate(zip(phones, (1536, 2048))):
        digit = sorted(photo.parent.glob("*.png"))[0]
        photo.write_bytes(phone_photo(Image.open(digit), seed, short_side=side))
    out = tmp_path / "pred"
    manifest = predict.run(spark, predict.PredictConfig(run=str(run_dir), input=str(new),
                                                        output=str(out)))
    return new, phones, out, manifest


def test_predict_new_images(spark, trained_run, predicted_new, capsys):
    from featurize import rundir

    run_dir, _ = trained_run
    new, phones, out, manifest = predicted_new
    assert manifest["status"] == "complete"
    assert manifest["counts"] == {"inputs": 53, "predicted": 52, "failed": 1,
                                  "failed_by_reason": {"truncated": 1}}
    assert manifest["preprocessing"]["decode"] == "draft"
    df = spark.read.parquet(str(out / "predictions"))
    assert df.schema.simpleString() == rundir.PREDICTIONS_SCHEMA
    rows = df.collect()
    assert len(rows) == 52
    for r in rows:
        assert 0.0 <= r["confidence"] <= 1.0
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
        assert r["predicted_label"] == max(r["probabilities"], key=r["probabilities"].get)
    assert spark.read.parquet(str(out / "errors")).count() == 1
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["counts"]["predicted"] == 52
    trained_t = json.loads((run_dir / "metrics.json").read_text())["calibration"]["temperature"]
    assert on_disk["calibration"] == {"temperature": trained_t, "applied": trained_t != 1.0}

    # One photo at a time without Spark (featurize.photo.predict_one): the same answers (the
    # phone photos decoded as the job decodes them), and the broken file gets the job's
    # reason.
    files = sorted(new.rglob("*.*"))
    assert assert_one_photo_agrees(run_dir, rows, files) == 52
    from featurize.model.preprocess import Preprocessing
    from featurize.photo.predict_one import Predictor

    one = Predictor(str(run_dir))
    assert one.preprocessing == Preprocessing()

    def moved(predictor: Predictor) -> float:
        """The largest change of a top probability from the job's, over the phone photos."""
        worst = 0.0
        for photo in phones:
            job_row = next(r for r in rows if r["path"].endswith(photo.name))
            answer = predictor.predict(photo.read_bytes(), str(photo))
            worst = max([worst] + [abs(t["probability"] - job_row["probabilities"][t["label"]])
                                   for t in answer["top"]])
        return worst

    # the same decode: the same answers to float precision (one image a call against
    # batches of 16); decoded in full instead, they move by far more
    same = moved(one)
    one.preprocessing = Preprocessing(decode="full")
    other = moved(one)
    assert same < 1e-5 and other > 20 * max(same, 1e-6), (same, other)
    from featurize.photo.predict_one import main

    broken = new / "7" / "broken_upload.png"
    good = new / "3" / sorted(p.name for p in (new / "3").iterdir())[0]
    label = next(r["predicted_label"] for r in rows if r["path"].endswith(f"/3/{good.name}"))
    assert main(["--run", str(run_dir), str(good), str(broken)]) == 1  # one unreadable
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("  ")[:2] == [str(good), label]
    assert lines[1].startswith(f"{broken}  error:truncated  ")
    assert main(["--run", str(run_dir), "--json", "--top", "2", str(good)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["label"] == label and len(answer["top"]) == 2
    assert answer["top"][0] == {"label": label, "probability": answer["confidence"]}


def test_new_images_are_classified_with_imagenet_weights(spark, predicted_new):
    require_imagenet()
    rows = spark.read.parquet(str(predicted_new[2] / "predictions")).collect()
    correct = [r["predicted_label"] == r["path"].split("/")[-2] for r in rows
               if "phone" not in r["path"]]
    assert len(correct) == 50 and np.mean(correct) >= 0.8


def _copy_run(run_dir: Path, dest: Path) -> Path:
    shutil.copytree(run_dir, dest)
    return dest


def test_predict_refuses_mismatched_models(spark, trained_run, tmp_path):
    from pyspark.ml import PipelineModel

    from featurize.classifier import predict
    from featurize.photo.predict_one import Predictor
    from featurize.reduce import pca as reduce

    run_dir, _ = trained_run
    write(tmp_path / "new" / "x" / "a.png", (run_dir.parent / "images" / "3" / "3_000.png")
          .read_bytes())

    def attempt(run: Path, match: str, one_photo: str | None = None) -> None:
        with pytest.raises(ConfigError, match=match):
            predict.run(spark, predict.PredictConfig(run=str(run), input=str(tmp_path / "new"),
                                                     output=str(tmp_path / f"o-{run.name}")))
        assert not (tmp_path / f"o-{run.name}").exists()
        with pytest.raises(ConfigError, match=one_photo or match):  # predict_one too
            Predictor(str(run))

    # A PCA model refitted (here on half the features) after the classifier was trained.
    stale = _copy_run(run_dir, tmp_path / "stale")
    features = spark.read.parquet(str(stale / "features")).limit(100)
    refit, _ = reduce.fit_reducer(features, 100, k=5, variance=None)
    shutil.rmtree(stale / "models" / "pca")
    refit.write().save(str(stale / "models" / "pca"))
    assert isinstance(PipelineModel.load(str(stale / "models" / "pca")), PipelineModel)
    # predict_one reads no Spark model: it goes by the manifest's PCA model id, which a
    # re-featurized run changes, and by the stale mark --resume leaves in metrics.json
    m = json.loads((stale / "manifest.json").read_text())
    m["pca"]["model_id"] = reduce.model_fingerprint(refit)
    (stale / "manifest.json").write_text(json.dumps(m))
    attempt(stale, "different PCA model", "another PCA model")
    marked = _copy_run(run_dir, tmp_path / "marked")
    m = json.loads((marked / "metrics.json").read_text())
    m["stale"] = {"reason": "the run was re-featurized"}
    (marked / "metrics.json").write_text(json.dumps(m))
    attempt(marked, "classifier is stale")

    other_pre = _copy_run(run_dir, tmp_path / "prepro")
    m = json.loads((other_pre / "manifest.json").read_text())
    m["preprocessing"]["name"] = "pillow-rgb-nearest224-v0"
    (other_pre / "manifest.json").write_text(json.dumps(m))
    attempt(other_pre, "preprocessing")

    other_w = _copy_run(run_dir, tmp_path / "weights")
    m = json.loads((other_w / "manifest.json").read_text())
    m["weights"]["arrays_sha256"] = "0" * 64
    (other_w / "manifest.json").write_text(json.dumps(m))
    attempt(other_w, "weights resolved from")

    untrained = _copy_run(run_dir, tmp_path / "untrained")
    (untrained / "metrics.json").unlink()
    attempt(untrained, "no trained classifier")

    unexported = _copy_run(run_dir, tmp_path / "unexported")
    (unexported / "models" / "classifier.npz").unlink()
    with pytest.raises(ConfigError, match="no models/classifier.npz"):
        Predictor(str(unexported))


def test_report_pngs(clustered_run):
    from PIL import Image

    from featurize.review.report import write_report

    run_dir, _ = clustered_run
    written = write_report(str(run_dir))
    names = sorted(os.path.basename(p) for p in written)
    # a clustered run: the cluster pictures are in
    assert names == ["cluster_grid.png", "clusters_map.png", "confusion_matrix.png",
                     "explained_variance.png", "index.html", "index.md", "mistakes.png",
                     "projection.png", "reliability.png", "silhouette.png"]
    for p in written:
        if p.endswith(".png"):
            with Image.open(p) as img:
                assert img.format == "PNG" and img.size[0] >= 400 and img.size[1] >= 250
                # drawn, not blank: dark marks on light ground, and more than a few colours
                grey = img.convert("L")
                lo, hi = grey.getextrema()
                assert hi - lo >= 128 and len(grey.getcolors(256)) >= 16, p
    from featurize.review.report import load_run
    from featurize.review.report_clusters import embed_2d, load_clusters

    clusters = load_clusters(str(run_dir), load_run(str(run_dir)).pca)
    assert len(clusters.assigned) == 600  # every clustered image has its features
    sample = embed_2d(clusters, max_points=100)
    assert len(sample) == 100 and np.isfinite(sample[["x", "y"]].to_numpy()).all()
    assert set(sample["path"]) <= set(clusters.assigned["path"])
    html = (run_dir / "report" / "index.html").read_text()
    assert all(f"src='{n}'" in html for n in names if n.endswith(".png"))


def test_notebook_executes_headless(clustered_run, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    run_dir, _ = clustered_run
    monkeypatch.setenv("FEATURIZE_RUN", str(run_dir))
    nb = nbformat.read(REPO / "notebooks" / "explore_run.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO / "notebooks")}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    # variance, projection, confusion matrix, reliability, mistakes; clusters: map,
    # silhouette, grid
    assert len(images) == 8
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "test accuracy" in text and "test ECE" in text
    assert "silhouette" in text and "ARI" in text


def test_image_size_320_end_to_end_and_resume_refuses_another_size(spark, weights_spec,
                                                                   tmp_path):
    """featurize → train → predict at 320: predict applies the run's own preprocessing;
    a resume at 224 (or with squash) refuses the 320 crop run before any work."""
    from featurize.classifier import predict, train
    from featurize.extract import job

    write_sample(str(tmp_path / "images"), per_class=4, with_broken=False)
    write_sample(str(tmp_path / "new"), per_class=1, offset=50, with_broken=False)
    run_dir = tmp_path / "run"
    made = job.run(spark, FeaturizeConfig(input=str(tmp_path / "images"), output=str(run_dir),
                                          weights=weights_spec, image_size=320, pca_k=5))
    assert made["preprocessing"] == {
        "name": "pillow-draft-exif-rgb-crop875-gap2-bilinear320-mobilenet_v2-v1",
        "mode": "crop", "image_size": [320, 320], "resample": "bilinear", "decode": "draft",
        "reducing_gap": 2.0, "crop_fraction": 0.875}
    assert made["counts"]["featurized"] == 40
    metrics = train.run(spark, train.TrainConfig(run=str(run_dir), test_fraction=0.25,
                                                  reg_param=1e-3, calibrate=False))
    assert metrics["split"]["test"] == 10
    out = predict.run(spark, predict.PredictConfig(run=str(run_dir), input=str(tmp_path / "new"),
                                                   output=str(tmp_path / "pred")))
    assert out["preprocessing"] == made["preprocessing"]
    assert out["counts"]["predicted"] == 10
    for other in [{}, {"preprocess": "squash", "image_size": 320}]:
        with pytest.raises(ConfigError, match="made with another (model|preprocessing)"):
            job.run(spark, FeaturizeConfig(input=str(tmp_path / "images"), output=str(run_dir),
                                           weights=weights_spec, resume=True, pca_k=5, **other))
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    # a run of the full decode (made before draft) names the flags that continue it
    full = dict(made["preprocessing"], decode="full",
                name="pillow-exif-rgb-crop875-bilinear320-mobilenet_v2-v1")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "preprocessing": full}))
    with pytest.raises(ConfigError, match="resume with --preprocess crop --image-size 320 "
                                          "--decode full"):
        job.run(spark, FeaturizeConfig(input=str(tmp_path / "images"), output=str(run_dir),
                                       weights=weights_spec, resume=True, pca_k=5,
                                       image_size=320))
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
