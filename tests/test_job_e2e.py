"""The featurize job end to end on local Spark, over a generated labelled corpus."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from featurize.config import FeaturizeConfig
from featurize.errors import ConfigError
from featurize.extract.job import run
from tests.helpers import (
    assert_pca_model_reproduces, image_bytes, independent_listing, pattern_image, write,
)

pytestmark = pytest.mark.spark

FEATURES_SCHEMA = ("struct<path:string,label:string,length:bigint,"
                   "modification_time:timestamp,features:array<float>>")
ERRORS_SCHEMA = ("struct<path:string,label:string,length:bigint,"
                 "modification_time:timestamp,error:string,detail:string>")

# relative path -> (expected label, expected error reason or None)
EXPECTED = {
    "cats/a1.jpg": ("cats", None),
    "cats/a2.jpg": ("cats", None),
    "cats/a3.JPG": ("cats", None),
    "cats/a 4 ünï.jpeg": ("cats", None),
    "cats/truncated.jpg": ("cats", "truncated"),
    "cats/empty.png": ("cats", "empty"),
    "dogs/b1.png": ("dogs", None),
    "dogs/b2.PNG": ("dogs", None),
    "dogs/b3.jpg": ("dogs", None),
    "dogs/corrupt.jpg": ("dogs", "not_an_image"),
    "dogs/nested/deeper/c1.jpg": ("deeper", None),
    "root_level.jpg": (None, None),
}
NOT_READ = ["cats/notes.txt", "dogs/pic.gif", "dogs/jpg", "dogs/.hidden.jpg"]


def make_corpus(root: Path) -> Path:
    seed = 0
    for rel, (_, reason) in EXPECTED.items():
        seed += 1
        fmt = "PNG" if rel.lower().endswith(".png") else "JPEG"
        good = image_bytes(pattern_image(seed, (64 + 8 * seed, 72)), fmt)
        data = {None: good, "truncated": good[: len(good) // 3], "empty": b"",
                "not_an_image": b"<html>an error page saved as .jpg</html>\n"}[reason]
        write(root / rel, data)
    for rel in NOT_READ:
        write(root / rel, image_bytes(pattern_image(99), "GIF") if rel.endswith("gif") else b"x")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "images")


@pytest.fixture(scope="module")
def run_dir(spark, corpus, weights_spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    config = FeaturizeConfig(input=str(corpus), output=str(out), weights=weights_spec,
                             pca_k=3, batch_size=4)
    manifest = run(spark, config)
    return out, manifest


def uri(corpus: Path, rel: str) -> str:
    return "file:" + str(corpus / rel)


def test_independent_listing_matches_expectations(corpus):
    assert independent_listing(corpus) == {uri(corpus, r) for r in EXPECTED}


def test_features_rows_schema_labels_and_metadata(spark, run_dir, corpus):
    out, _ = run_dir
    df = spark.read.parquet(str(out / "features"))
    assert df.schema.simpleString() == FEATURES_SCHEMA
    rows = {r["path"]: r for r in df.collect()}
    good = {uri(corpus, rel): label for rel, (label, reason) in EXPECTED.items() if reason is None}
    assert set(rows) == set(good)
    for path, label in good.items():
        row = rows[path]
        local = path[len("file:"):]
        assert row["label"] == label, path
        assert row["length"] == os.path.getsize(local)
        mtime = datetime.fromtimestamp(os.stat(local).st_mtime, timezone.utc).replace(tzinfo=None)
        assert abs((row["modification_time"] - mtime).total_seconds()) < 0.002
        feats = np.asarray(row["features"], dtype=np.float32)
        assert feats.shape == (1280,) and np.isfinite(feats).all()
    matrix = np.stack([np.asarray(r["features"]) for r in rows.values()])
    assert np.ptp(matrix, axis=0).max() > 0  # images do not all map to one vector


def test_errors_rows_have_reasons(spark, run_dir, corpus):
    out, _ = run_dir
    df = spark.read.parquet(str(out / "errors"))
    assert df.schema.simpleString() == ERRORS_SCHEMA
    got = {r["path"]: (r["label"], r["error"], r["length"]) for r in df.collect()}
    expected = {uri(corpus, rel): (label, reason, os.path.getsize(corpus / rel))
                for rel, (label, reason) in EXPECTED.items() if reason}
    assert got == expected
    assert all(r["detail"] for r in df.collect())


def test_pca_output_and_model(spark, run_dir):
    out, manifest = run_dir
    pca = spark.read.parquet(str(out / "pca"))
    assert pca.schema.simpleString() == "struct<path:string,label:string,pca_features:array<float>>"
    features = spark.read.parquet(str(out / "features"))
    rows = {r["path"]: r for r in pca.collect()}
    assert set(rows) == {r["path"] for r in features.select("path").collect()}
    assert all(len(r["pca_features"]) == 3 for r in rows.values())
    assert assert_pca_model_reproduces(spark, out) == len(rows)
    assert manifest["pca"]["k"] == 3
    assert len(manifest["pca"]["explained_variance"]) == 3


def test_manifest_counts_equal_what_was_written(spark, run_dir, corpus):
    out, returned = run_dir
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(returned, default=str))
    assert manifest["format_version"] == 1 and manifest["status"] == "complete"
    n_features = spark.read.parquet(str(out / "features")).count()
    n_errors = spark.read.parquet(str(out / "errors")).count()
    counts = manifest["counts"]
    assert counts["inputs"] == len(independent_listing(corpus)) == len(EXPECTED)
    assert counts["featurized"] == n_features == 9
    assert counts["failed"] == n_errors == 3
    assert counts["failed_by_reason"] == {"empty": 1, "not_an_image": 1, "truncated": 1}
    # cats/notes.txt, dogs/pic.gif, dogs/jpg (no extension); dogs/.hidden.jpg is hidden
    assert counts["skipped_by_extension"] == {"(none)": 1, ".gif": 1, ".txt": 1}
    # The CNN ran once per decodable image: never again for errors/ or PCA's passes.
    assert counts["model_images"] == n_features
    assert manifest["preprocessing"]["name"] == "pillow-draft-exif-rgb-crop875-gap2-bilinear224-mobilenet_v2-v1"
    assert manifest["model"]["name"].endswith("input 224x224x3)")
    assert manifest["weights"]["source"] in ("imagenet", "file")
    assert len(manifest["weights"]["sha256"]) == 64
    for key in ("prepare_engine", "list_inputs", "featurize", "pca_fit", "pca_write", "total"):
        assert manifest["timings_seconds"][key] >= 0
    assert manifest["images_per_second"]["featurize"] > 0
    assert manifest["versions"]["pyspark"] == "3.5.6"
    assert (out / "features" / "_SUCCESS").exists() and (out / "pca" / "_SUCCESS").exists()
    assert manifest["files"] == {
        name: len(list((out / name).glob("part-*"))) for name in ("features", "errors", "pca")}
    # errors/ in one file for its 3 rows; pca/ in one for a 9-row features/
    assert manifest["files"]["errors"] == manifest["files"]["pca"] == 1


def test_existing_output_needs_overwrite_then_variance_mode_runs(spark, run_dir, corpus,
                                                                  weights_spec):
    out, _ = run_dir
    config = FeaturizeConfig(input=str(corpus), output=str(out), weights=weights_spec)
    with pytest.raises(ConfigError, match="--overwrite"):
        run(spark, config)
    other = out.parent / "variance"
    manifest = run(spark, FeaturizeConfig(input=str(corpus), output=str(other),
                                          weights=weights_spec, pca_variance=0.9,
                                          overwrite=True))
    assert manifest["status"] == "complete"
    pca = manifest["pca"]
    assert pca["requested_variance"] == 0.9 and pca["requested_k"] is None
    assert pca["cumulative_explained_variance"][-1] >= 0.9
    assert len(spark.read.parquet(str(other / "pca")).first()["pca_features"]) == pca["k"]
    # --overwrite really replaces: a stray file from before is gone.
    (other / "stray.txt").write_text("old")
    run(spark, FeaturizeConfig(input=str(corpus), output=str(other), weights=weights_spec,
                               pca_k=2, overwrite=True))
    assert not (other / "stray.txt").exists()
    assert json.loads((other / "manifest.json").read_text())["pca"]["k"] == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pca_k=13), "--pca-k 13 is larger than the 12 input images"),
        (dict(input="/nonexistent/folder"), "is not a folder"),
        (dict(input="nosuchscheme://bucket/prefix"), "no filesystem for the 'nosuchscheme://'"),
        (dict(output="nosuchscheme://bucket/out"), "no filesystem for the 'nosuchscheme://'"),
        (dict(weights="/nonexistent/weights.h5"), "no such file"),
    ],
    ids=["k-too-large", "missing-input", "input-scheme", "output-scheme", "weights-file"],
)
def test_bad_configuration_fails_before_any_output(spark, corpus, tmp_path, kwargs, message):
    from featurize.errors import WeightsError

    out = tmp_path / "never"
    base = dict(input=str(corpus), output=str(out), weights="random")
    base.update(kwargs)
    with pytest.raises((ConfigError, WeightsError), match=message):
        run(spark, FeaturizeConfig(**base))
    assert not out.exists()


def test_input_without_images_is_refused(spark, tmp_path):
    write(tmp_path / "in" / "a" / "readme.txt", b"no images here")
    with pytest.raises(ConfigError, match="holds no files ending in .jpg, .jpeg, .png"):
        run(spark, FeaturizeConfig(input=str(tmp_path / "in"), output=str(tmp_path / "o"),
                                   weights="random"))


@pytest.mark.parametrize("kwargs", [dict(pca_k=0), dict(pca_k=1281), dict(pca_variance=0.0),
                                    dict(pca_variance=1.5), dict(batch_size=0),
                                    dict(extensions=("j.pg",))])
def test_config_validation(kwargs):
    with pytest.raises(ConfigError):
        FeaturizeConfig(input="in", output="out", **kwargs)


def test_failed_run_leaves_a_failed_manifest(spark, tmp_path):
    from featurize.errors import ReducerError

    write(tmp_path / "in" / "a" / "x.jpg", b"not an image")
    write(tmp_path / "in" / "a" / "y.png", b"")
    out = tmp_path / "run"
    with pytest.raises(ReducerError, match="none decoded"):
        run(spark, FeaturizeConfig(input=str(tmp_path / "in"), output=str(out),
                                   weights="random", pca_k=1))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "ReducerError" in manifest["error"]
    assert manifest["counts"]["failed_by_reason"] == {"empty": 1, "not_an_image": 1}
    assert not (out / "pca").exists()


def test_a_folder_is_walked_once(spark, corpus, weights_spec, tmp_path, monkeypatch):
    """A local folder is walked once and its bytes read by the workers, whatever else it
    holds. Through Spark's scan (``--reader scan``, the way of EMR's ``s3://``) the
    walk's reader is also the content reader when every file is an image; a folder with
    other files is walked a second time, through the extension glob (a filter on
    ``path`` would still read their bytes)."""
    from featurize.inputs import listing

    walks = []
    real = listing.binary_files

    def spy(spark_, uri, extensions):
        walks.append(extensions)
        return real(spark_, uri, extensions)

    monkeypatch.setattr(listing, "binary_files", spy)
    only_images = tmp_path / "only"
    for i in range(4):
        write(only_images / "a" / f"{i}.png", image_bytes(pattern_image(i), "PNG"))
    outputs = {}
    for reader, second_walk in (("auto", []), ("scan", [("jpg", "jpeg", "png")])):
        walks.clear()
        m = run(spark, FeaturizeConfig(input=str(only_images), output=str(tmp_path / "r1"),
                                       weights=weights_spec, pca_k=2, reader=reader,
                                       overwrite=True))
        assert walks == [None]
        assert m["spark"]["reader"] == ("workers" if reader == "auto" else "scan")
        walks.clear()
        m = run(spark, FeaturizeConfig(input=str(corpus), output=str(tmp_path / "r2"),
                                       weights=weights_spec, pca_k=2, reader=reader,
                                       overwrite=True))
        assert walks == [None, *second_walk]
        features = {r["path"]: r["features"] for r in
                    spark.read.parquet(str(tmp_path / "r2" / "features")).collect()}
        errors = sorted(tuple(r) for r in spark.read.parquet(
            str(tmp_path / "r2" / "errors")).select("path", "error").collect())
        outputs[reader] = (m["counts"], features, errors)
    # the same rows, features and errors whoever reads the bytes
    assert outputs["auto"][0] == outputs["scan"][0]
    assert outputs["auto"][2] == outputs["scan"][2] and outputs["auto"][2]
    assert outputs["auto"][1].keys() == outputs["scan"][1].keys()
    for path, feats in outputs["auto"][1].items():
        assert np.allclose(feats, outputs["scan"][1][path], atol=1e-6)


def test_reader_refusals_say_what_to_change(spark, corpus, tmp_path):
    """--reader: an unknown value, the scan with --input-list, the workers on a scheme no
    Python worker reads, and the scan where this Spark has no S3 filesystem."""
    from featurize.errors import ConfigError

    with pytest.raises(ConfigError, match="--reader jvm: choose one of auto, workers, scan"):
        FeaturizeConfig(input=str(corpus), output=str(tmp_path / "o"), reader="jvm")
    with pytest.raises(ConfigError, match="--reader scan reads a walked folder"):
        FeaturizeConfig(input=str(corpus), output=str(tmp_path / "o"), reader="scan",
                        input_list=str(tmp_path / "list.txt"))
    with pytest.raises(ConfigError, match="not hdfs://; use --reader scan"):
        FeaturizeConfig(input="hdfs://nn/photos", output=str(tmp_path / "o"),
                        reader="workers")
    for reader in ("workers", "auto"):  # accepted
        FeaturizeConfig(input="s3://bucket/photos", output=str(tmp_path / "o"), reader=reader)
    with pytest.raises(ConfigError, match="--reader scan: this Spark has no filesystem for "
                                          "s3://bucket/photos"):
        run(spark, FeaturizeConfig(input="s3://bucket/photos", output=str(tmp_path / "o"),
                                   weights="random", reader="scan"))
    assert not (tmp_path / "o").exists()
