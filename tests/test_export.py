"""featurize/classifier/export.py: the NumPy chain against a plain loop, and its file format."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest

from featurize.classifier.export import ExportedClassifier, fingerprint


def exported(seed: int = 0, dim: int = 12, k: int = 4, labels: int = 3) -> ExportedClassifier:
    rng = np.random.default_rng(seed)
    mean, std = rng.normal(size=dim), rng.uniform(0.5, 2, size=dim)
    std[3] = 0.0  # a constant feature: Spark's scaler gives 0 there
    components = np.linalg.qr(rng.normal(size=(dim, k)))[0]
    return ExportedClassifier(mean=mean, std=std, components=components,
                              coef=rng.normal(size=(labels, k)), intercept=rng.normal(size=labels),
                              labels=tuple(f"c{i}" for i in range(labels)), temperature=1.7,
                              pca_model_id=fingerprint(mean, std, components),
                              weights_sha256="ab" * 32, preprocessing="pre-v1")


def loop_probabilities(e: ExportedClassifier, x: list[float], t: float) -> list[float]:
    scaled = [(v - m) / s if s != 0 else 0.0 for v, m, s in zip(x, e.mean, e.std)]
    z = [float(np.float32(sum(scaled[i] * e.components[i][j] for i in range(len(x)))))
         for j in range(e.components.shape[1])]
    logits = [sum(w * v for w, v in zip(row, z)) + b for row, b in zip(e.coef, e.intercept)]
    top = max(logits)
    exps = [math.exp((v - top) / t) for v in logits]
    return [v / sum(exps) for v in exps]


def test_probabilities_equal_a_plain_loop():
    e = exported()
    x = np.random.default_rng(1).normal(size=(5, 12)).astype(np.float32)
    got = e.probabilities(x)
    for row, p in zip(x, got):
        assert p == pytest.approx(loop_probabilities(e, [float(v) for v in row], 1.7), abs=1e-9)
    assert e.probabilities(x, temperature=1.0).argmax(1).tolist() == got.argmax(1).tolist()
    assert np.allclose(got.sum(1), 1.0)


def test_round_trip_and_refusals():
    e = exported()
    back = ExportedClassifier.from_bytes(e.to_bytes())
    assert back.labels == e.labels and back.temperature == 1.7
    assert back.weights_sha256 == "ab" * 32 and back.preprocessing == "pre-v1"
    for name in ("mean", "std", "components", "coef", "intercept"):
        assert np.array_equal(getattr(back, name), getattr(e, name))
    with np.load(io.BytesIO(e.to_bytes()), allow_pickle=False) as z:
        arrays = dict(z)
    arrays["components"] = arrays["components"] * 1.001  # edited: the id no longer matches
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(ValueError, match="do not match its pca_model_id"):
        ExportedClassifier.from_bytes(buf.getvalue())
    arrays["format_version"] = np.int64(99)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(ValueError, match="format 99"):
        ExportedClassifier.from_bytes(buf.getvalue())
