"""Test helpers: deterministic images and an independent file listing."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np


def image_bytes(img, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def pattern_image(seed: int, size: tuple[int, int] = (96, 80)):
    """A deterministic, textured RGB image (different for every seed)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([
        127 + 120 * np.sin(xx / (3 + seed % 7) + seed),
        127 + 120 * np.cos(yy / (4 + seed % 5) - seed),
        127 + 120 * np.sin((xx + yy) / (5 + seed % 3)),
    ], axis=-1)
    noise = rng.normal(0, 12, size=base.shape)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def independent_listing(root: Path, extensions=("jpg", "jpeg", "png")) -> set[str]:
    """Spark-style ``file:`` paths of every file under root whose extension matches.

    Hidden files and folders (names starting with ``.`` or ``_``) are skipped, as
    Spark's file index skips them.
    """
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
        for name in filenames:
            if name.startswith((".", "_")):
                continue
            if name.rsplit(".", 1)[-1].lower() in extensions and "." in name:
                found.add("file:" + os.path.join(os.path.abspath(dirpath), name))
    return found


def features_by_relpath(spark, run_dir: Path, marker: str) -> dict[str, np.ndarray]:
    """``{path after marker: features}`` of a run directory's ``features/``."""
    return {r["path"].split(marker, 1)[1]: np.asarray(r["features"]) for r in
            spark.read.parquet(str(run_dir / "features")).collect()}


def assert_same_features(spark, run_a: Path, marker_a: str, run_b: Path, marker_b: str,
                         n: int) -> None:
    """Both runs featurized the same ``n`` files (named relative to each marker) to
    features equal within 1e-5."""
    a = features_by_relpath(spark, run_a, marker_a)
    b = features_by_relpath(spark, run_b, marker_b)
    assert a.keys() == b.keys() and len(a) == n
    for rel in a:
        np.testing.assert_allclose(a[rel], b[rel], rtol=1e-5, atol=1e-5)


def assert_pca_model_reproduces(spark, run_dir: Path) -> int:
    """``models/pca/`` loaded and applied to ``features/`` gives ``pca/`` (1e-5): the saved
    model is the one that made the projection. Returns the number of rows compared."""
    from pyspark.ml import PipelineModel

    from featurize.reduce.pca import project

    features = spark.read.parquet(str(run_dir / "features"))
    model = PipelineModel.load(str(run_dir / "models" / "pca"))
    again = {r["path"]: r["pca_features"] for r in project(model, features).collect()}
    written = {r["path"]: r["pca_features"] for r in
               spark.read.parquet(str(run_dir / "pca")).collect()}
    assert set(again) == set(written)
    for path, row in written.items():
        np.testing.assert_allclose(row, again[path], rtol=1e-5, atol=1e-5)
    return len(written)


def assert_one_photo_agrees(run_dir, prediction_rows, files, top: int = 3) -> int:
    """``featurize.photo.predict_one`` on ``files`` gives the Spark predict job's answers
    (``prediction_rows``, from its ``predictions/``): the same label, confidences and top
    labels within 1e-3; a file the job could not read gets an error. Returns the number
    of files answered."""
    import pytest

    from featurize.photo.predict_one import Predictor

    one = Predictor(str(run_dir))
    by_path = {Path(r["path"].replace("file:", "")).resolve(): r for r in prediction_rows}
    answered = 0
    for f in files:
        answer = one.predict(Path(f).read_bytes(), str(f), top=top)
        row = by_path.pop(Path(f).resolve(), None)
        if row is None:
            assert "error" in answer, answer
            continue
        probs = row["probabilities"]
        assert answer["label"] == row["predicted_label"]
        assert answer["confidence"] == pytest.approx(row["confidence"], abs=1e-3)
        assert [t["label"] for t in answer["top"]] == sorted(probs, key=probs.get,
                                                             reverse=True)[:top]
        for t in answer["top"]:
            assert t["probability"] == pytest.approx(probs[t["label"]], abs=1e-3)
        answered += 1
    assert by_path == {}, "rows of the job for files not given"
    return answered
