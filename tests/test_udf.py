"""The per-batch UDF logic, with a stand-in model (no Spark, no TensorFlow model)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from featurize.config import FEATURE_DIM
from featurize.extract.udf import featurize_batch
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
    from featurize.model.preprocess import preprocess_image

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


def test_decode_ahead_keeps_order_and_runs_the_next_decode_during_the_model():
    """overlapped(): the same frames in the same order as decode-then-extract in turn,
    and batch k+1's decode starts while the model still runs batch k (the model call
    waits for that start; run in turn, it would time out)."""
    import threading

    from featurize.extract.udf import decode_batch, extract_batch, overlapped

    batches = [pd.Series([image_bytes(pattern_image(3 * b + i), "PNG") for i in range(3)]
                         + ([b""] if b == 1 else [])) for b in range(4)]
    started = [threading.Event() for _ in batches]
    decoded_on = []

    def decode(contents):
        k = next(i for i, b in enumerate(batches) if b is contents)
        decoded_on.append(threading.current_thread().name)
        started[k].set()
        return decode_batch(contents)

    def extract(decoded, k=[0]):  # noqa: B006 - the batch counter
        k[0] += 1
        if k[0] < len(batches):
            assert started[k[0]].wait(10), f"batch {k[0]} not decoded during the model call"
        return extract_batch(decoded, fake_extract)

    got = list(overlapped(iter(batches), decode, extract))
    expected = [featurize_batch(b, fake_extract) for b in batches]
    assert len(got) == 4 and [len(g) for g in got] == [3, 4, 3, 3]
    for g, e in zip(got, expected):
        assert g["error"].tolist() == e["error"].tolist()
        for a, b in zip(g["features"], e["features"]):
            assert (a is None and b is None) or np.array_equal(a, b)
    assert all(name.startswith("featurize-decode") for name in decoded_on)


def test_decode_ahead_raises_a_failure_in_the_task():
    import pytest

    from featurize.extract.udf import decode_batch, extract_batch, overlapped

    def decode(contents):
        if len(contents) == 2:
            raise MemoryError("decoder ran out")
        return decode_batch(contents)

    frames = overlapped(iter([pd.Series([b""]), pd.Series([b"", b""])]), decode,
                        lambda d: extract_batch(d, fake_extract))
    assert next(frames)["error"].tolist() == ["empty"]
    with pytest.raises(MemoryError, match="decoder ran out"):
        next(frames)
