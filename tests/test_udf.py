"""The per-batch UDF logic, with a stand-in model (no Spark, no TensorFlow model)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from featurize.model import FEATURE_DIM
from featurize.udf import featurize_batch
from tests.helpers import image_bytes, pattern_image


def fake_extract(images: np.ndarray) -> np.ndarray:
    # A recognisable function of each image: its mean pixel, repeated.
    return np.repeat(images.mean(axis=(1, 2, 3))[:, None], FEATURE_DIM, axis=1).astype(np.float32)


def test_rows_keep_order_and_bad_rows_get_reasons():
    good = [image_bytes(pattern_image(i), "PNG") for i in range(3)]
    contents = pd.Series([good[0], b"", good[1], b"not an image", good[2]])
    calls = []

    def extract(x):
        calls.append(len(x))
        return fake_extract(x)

    out = featurize_batch(contents, extract)
    assert list(out.columns) == ["features", "error", "detail"]
    assert len(out) == 5
    assert calls == [3]  # one model call for the whole batch's good images
    assert out["error"].tolist() == [None, "empty", None, "not_an_image", None]
    from featurize.images import preprocess_image

    for row, data in zip([0, 2, 4], good):
        expected = preprocess_image(data).mean()
        assert out["features"][row].shape == (FEATURE_DIM,)
        np.testing.assert_allclose(out["features"][row][0], expected, rtol=1e-6)
    assert out["features"][1] is None and out["features"][3] is None


def test_all_bad_batch_never_calls_the_model():
    def extract(x):
        raise AssertionError("model called on an all-bad batch")

    out = featurize_batch(pd.Series([b"", b"x"]), extract)
    assert out["error"].tolist() == ["empty", "not_an_image"]
