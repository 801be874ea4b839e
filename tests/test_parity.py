"""The job's features equal plain Keras MobileNetV2 on the same images.

The reference pixels are made here (Pillow → RGB → bilinear 224 → x/127.5 - 1), not
by the package's preprocessing function; the reference model is
``keras.applications.MobileNetV2(include_top=False, pooling="avg")`` with the same
weights: ImageNet when the Keras cache has them, else the weights file the tests write.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurize.config import FeaturizeConfig
from featurize.job import run
from tests.conftest import FRUITS, REQUIRE_SHARED
from tests.helpers import image_bytes, pattern_image, write

pytestmark = pytest.mark.spark


def parity_images(dest: Path) -> list[Path]:
    """Real Fruits-360 photos (two per class, four classes) when ../shared has them,
    else generated images; copied into a temporary folder (never into the repo)."""
    files: list[Path] = []
    if REQUIRE_SHARED and not FRUITS.is_dir():
        pytest.fail(f"{FRUITS} is not present, but FEATURIZE_REQUIRE_SHARED=1")
    if FRUITS.is_dir():
        for cls in sorted(p for p in FRUITS.iterdir() if p.is_dir())[:4]:
            for src in sorted(cls.glob("*.jpg"))[:2]:
                target = dest / cls.name / src.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)
                files.append(target)
    else:
        for i in range(8):
            files.append(write(dest / f"c{i % 4}" / f"img{i}.jpg",
                               image_bytes(pattern_image(100 + i, (100, 100)))))
    return files


def reference_features(files: list[Path], weights_spec: str) -> np.ndarray:
    import keras

    weights = "imagenet" if weights_spec == "imagenet" else None
    model = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), include_top=False, pooling="avg", weights=weights)
    if weights is None:
        model.load_weights(weights_spec)
    pixels = np.stack([
        np.asarray(Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR),
                   dtype=np.float32) / 127.5 - 1.0
        for f in files
    ])
    return model.predict(pixels, batch_size=len(files), verbose=0)


def test_features_match_plain_keras(spark, weights_spec, tmp_path):
    files = parity_images(tmp_path / "images")
    assert len(files) == 8
    reference = reference_features(files, weights_spec)
    # The check is meaningful only if images give different features.
    spread = np.abs(reference[:, None, :] - reference[None, :, :]).max(axis=2)
    off_diagonal = spread[~np.eye(len(files), dtype=bool)]
    assert off_diagonal.min() > 1e-2 * np.abs(reference).max()

    out = tmp_path / "run"
    # batch 3: the last batch of every partition is padded, which must not leak.
    run(spark, FeaturizeConfig(input=str(tmp_path / "images"), output=str(out),
                               weights=weights_spec, pca_k=2, batch_size=3))
    rows = {r["path"]: np.asarray(r["features"], dtype=np.float32)
            for r in spark.read.parquet(str(out / "features")).collect()}
    assert len(rows) == len(files)
    for i, f in enumerate(files):
        got = rows["file:" + str(f)]
        ref = reference[i]
        err = np.abs(got - ref).max()
        assert err <= 1e-4 * np.abs(ref).max(), f"{f.name}: max|a-b| = {err}"
