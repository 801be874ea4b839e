"""The job's features equal plain Keras MobileNetV2 on the same images.

The reference pixels are made here from the documented rule (Pillow → RGB → the central
square of side shorter × 224/256 for ``crop``, the whole image for ``squash`` → bilinear
size×size → x/127.5 - 1), not by the package's preprocessing function; the reference
model is ``keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False,
pooling="avg")`` with the same weights: ImageNet when the Keras cache has them, else the
weights file the tests write.
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


def reference_model(weights_spec: str, size: int):
    import keras

    model = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), include_top=False, pooling="avg",
        weights="imagenet" if weights_spec == "imagenet" else None)
    if weights_spec != "imagenet":
        model.load_weights(weights_spec)
    if size == 224:
        return model
    # the same convolutional weights at another input size
    other = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, pooling="avg", weights=None)
    other.set_weights(model.get_weights())
    return other


def reference_pixels(img: Image.Image, mode: str, size: int) -> np.ndarray:
    img = img.convert("RGB")
    w, h = img.size
    box = (0, 0, w, h)
    if mode == "crop":
        side = min(w, h) * 224 / 256
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    return np.asarray(img.resize((size, size), Image.BILINEAR, box=box),
                      dtype=np.float32) / 127.5 - 1.0


def reference_features(files: list[Path], weights_spec: str, mode: str = "crop",
                       size: int = 224) -> np.ndarray:
    model = reference_model(weights_spec, size)
    pixels = np.stack([reference_pixels(Image.open(f), mode, size) for f in files])
    return model.predict(pixels, batch_size=len(files), verbose=0)


# squash is checked against the same reference in tests/test_images.py
@pytest.mark.parametrize("mode, size, engine", [("crop", 224, "openvino"),
                                                ("crop", 224, "tensorflow"),
                                                ("crop", 320, "openvino")])
def test_features_match_plain_keras(spark, weights_spec, tmp_path, mode, size, engine):
    files = parity_images(tmp_path / "images")
    assert len(files) == 8
    reference = reference_features(files, weights_spec, mode, size)
    # The check is meaningful only if images give different features.
    spread = np.abs(reference[:, None, :] - reference[None, :, :]).max(axis=2)
    off_diagonal = spread[~np.eye(len(files), dtype=bool)]
    assert off_diagonal.min() > 1e-2 * np.abs(reference).max()

    out = tmp_path / "run"
    # batch 3: the last batch of every partition is padded, which must not leak.
    manifest = run(spark, FeaturizeConfig(input=str(tmp_path / "images"), output=str(out),
                                          weights=weights_spec, pca_k=2, batch_size=3,
                                          preprocess=mode, image_size=size,
                                          engine=engine))
    assert manifest["engine"]["name"] == engine
    assert manifest["preprocessing"]["mode"] == mode
    assert manifest["preprocessing"]["image_size"] == [size, size]
    assert manifest["model"]["name"].endswith(f"input {size}x{size}x3)")
    rows = {r["path"]: np.asarray(r["features"], dtype=np.float32)
            for r in spark.read.parquet(str(out / "features")).collect()}
    assert len(rows) == len(files)
    for i, f in enumerate(files):
        got = rows["file:" + str(f)]
        ref = reference[i]
        err = np.abs(got - ref).max()
        assert err <= 1e-4 * np.abs(ref).max(), f"{f.name}: max|a-b| = {err}"


def test_crop_sees_a_portrait_and_a_landscape_photo_alike(resolved_weights):
    """The same object centred on a white 400×300 and a white 300×400 canvas: the crops
    hold the object at the same place and scale, so the features nearly agree (the
    resampling sees slightly different neighbours); squashed, each is distorted its own
    way."""
    from featurize.images import Preprocessing, preprocess_image
    from featurize.engines.tensorflow_engine import TensorFlowExtractor

    obj = pattern_image(11, (200, 200))
    shots = []
    for size in [(400, 300), (300, 400)]:
        canvas = Image.new("RGB", size, (255, 255, 255))
        canvas.paste(obj, ((size[0] - 200) // 2, (size[1] - 200) // 2))
        shots.append(image_bytes(canvas, "PNG"))
    extract = TensorFlowExtractor(2, 2, 224, resolved_weights.arrays)

    def distance(mode: str) -> float:
        x = np.stack([preprocess_image(b, preprocessing=Preprocessing(mode)) for b in shots])
        f = extract(x)
        return float(np.linalg.norm(f[0] - f[1]) / np.linalg.norm(f[0]))

    crop, squash = distance("crop"), distance("squash")
    # measured: crop 0.008, squash 0.57 (relative distance)
    assert crop < 0.02 and squash > 10 * crop, (crop, squash)
