"""The job's features equal plain Keras MobileNetV2 on the same images.

The reference pixels are made here from the documented rule (Pillow, a large JPEG decoded
at the DCT scale the rule picks → RGB → the central square of side shorter × 224/256 for
``crop``, the whole image for ``squash`` → bilinear size×size → x/127.5 - 1), not by the
package's preprocessing function; the reference
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
from featurize.extract.job import run
from tests.conftest import FRUITS, REQUIRE_SHARED, SHARED
from tests.helpers import image_bytes, pattern_image, write

pytestmark = pytest.mark.spark
CLOTHING = SHARED / "data" / "clothing-small"


#: Phone-size photos in the parity set, by their short side (3:4 portraits from the
#: clothing set). The draft decode reads them at 1/8 and 1/4 (crop 224), 1/8 and 1/2
#: (crop 320).
PHOTO_SIDES = (3024, 1200)


def phone_photos(dest: Path) -> list[Path]:
    """Two phone-size JPEGs made as ``make bench-photos`` makes them: a clothing photo
    upscaled with noise (a generated pattern without ../shared)."""
    from bench.photos import phone_photo

    if REQUIRE_SHARED and not CLOTHING.is_dir():
        pytest.fail(f"{CLOTHING} is not present, but FEATURIZE_REQUIRE_SHARED=1")
    photos = sorted(CLOTHING.glob("test/*/*.jpg"))[:len(PHOTO_SIDES)] \
        if CLOTHING.is_dir() else [None] * len(PHOTO_SIDES)
    files = []
    for seed, (side, src) in enumerate(zip(PHOTO_SIDES, photos)):
        image = Image.open(src) if src else pattern_image(seed, (300, 400))
        files.append(write(dest / "phone" / f"photo{seed}.jpg",
                           phone_photo(image, seed, short_side=side)))
    return files


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


def reference_pixels(img: Image.Image, mode: str, size: int, decode: str = "draft") -> np.ndarray:
    """The documented rule: the box (crop: the central square of 224/256 of the shorter
    side), a JPEG decoded at the largest of 1/8, 1/4, 1/2 that leaves the box at least
    ``size`` (``draft``) with the box scaled to match, bilinear to size×size, x/127.5 - 1
    (with a reducing gap of 2, which changes nothing within 2×)."""
    w, h = img.size
    box = (0, 0, w, h)
    if mode == "crop":
        side = min(w, h) * 224 / 256
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    scale = 1
    if decode == "draft" and img.format == "JPEG":
        scale = next((s for s in (8, 4, 2) if (box[2] - box[0]) / s >= size), 1)
        img.draft("RGB", (w // scale, h // scale))
        box = tuple(v / scale for v in box)
    return np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR, box=box),
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
    files = parity_images(tmp_path / "images") + phone_photos(tmp_path / "images")
    assert len(files) == 10
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
                                          engine=engine, decode_ahead=engine == "tensorflow"))
    assert manifest["engine"]["name"] == engine
    # one run decodes the next batch on a second thread: the same features
    assert manifest["spark"]["decode_ahead"] is (engine == "tensorflow")
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
    from featurize.model.engines.tensorflow_engine import TensorFlowExtractor
    from featurize.model.preprocess import Preprocessing, preprocess_image

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


def test_draft_decode_stays_close_to_the_full_decode_on_phone_photos(resolved_weights,
                                                                     tmp_path):
    """What the draft decode costs in features: eight 12 MP photos, features from the
    drafted pixels against the full decode's. Measured on 40 such photos (make
    bench-photos' set): relative distance median 0.056, max 0.088, where a photo's
    nearest other photo is at a median 0.90."""
    from bench.photos import phone_photo
    from featurize.model.engines.tensorflow_engine import TensorFlowExtractor
    from featurize.model.preprocess import Preprocessing, preprocess_image

    if REQUIRE_SHARED and not CLOTHING.is_dir():
        pytest.fail(f"{CLOTHING} is not present, but FEATURIZE_REQUIRE_SHARED=1")
    sources = [Image.open(f) for f in sorted(CLOTHING.glob("validation/*/*.jpg"))[::34][:8]] \
        if CLOTHING.is_dir() else [pattern_image(i, (300, 400)) for i in range(8)]
    photos = [phone_photo(img, seed) for seed, img in enumerate(sources)]
    extract = TensorFlowExtractor(8, 2, 224, resolved_weights.arrays)
    drafted = extract(np.stack([preprocess_image(p) for p in photos]))
    full = extract(np.stack([preprocess_image(p, preprocessing=Preprocessing(decode="full"))
                             for p in photos]))
    norm = np.linalg.norm(full, axis=1)
    rel = np.linalg.norm(drafted - full, axis=1) / norm
    between = np.linalg.norm(full[:, None] - full[None], axis=2) / norm[:, None]
    nearest_other = np.sort(between, axis=1)[:, 1]
    assert np.median(rel) < 0.08 and rel.max() < 0.15, rel
    assert np.median(nearest_other) > 5 * np.median(rel), (nearest_other, rel)
