"""Honest confidences: temperature scaling and the scores that say whether it worked.

Pure NumPy on small arrays (one row of logits per image of a split), used by the train
job on the driver. The temperature ``T`` divides the classifier's logits before the
softmax: ``T > 1`` softens an over-confident model, ``T < 1`` sharpens an under-confident
one, and the winning class never changes (dividing by a positive number keeps the order).
Guo et al., "On Calibration of Modern Neural Networks" (ICML 2017), section 4.2.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Equal-width confidence bins of the expected calibration error and the diagram.
ECE_BINS = 15
#: The temperature search interval. Outside it the logits are degenerate (all equal or
#: separated by thousands), and a temperature at either end is reported as it is.
T_MIN, T_MAX = 0.05, 100.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)``, stable for large logits.

    >>> softmax(np.array([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes at ``temperature``."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray, *, tol: float = 1e-6) -> float:
    """The temperature that minimises the NLL of ``y`` given held-out ``logits``.

    The NLL is convex in the inverse temperature (a log-sum-exp of a linear function
    minus a linear function), so a golden-section search on ``log T`` over
    [:data:`T_MIN`, :data:`T_MAX`] finds its minimum.

    Raises
    ------
    ValueError
        No rows, or ``y`` does not match the logits.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if logits.ndim != 2 or len(logits) == 0 or len(y) != len(logits):
        raise ValueError(f"logits {logits.shape} and labels {y.shape} do not match")
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, y, math.exp(a)), nll(logits, y, math.exp(b))
    while hi - lo > tol:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, y, math.exp(b))
    return math.exp((lo + hi) / 2)


def at_bound(temperature: float) -> bool:
    """Whether a fitted temperature sits at the end of the search interval: the held-out
    logits did not determine one. Typically every held-out image was classified right,
    so the likelihood keeps rising as T → 0 (Fruits-360: T = 0.05, every confidence
    1.000), a sharpening no held-out error argued for."""
    return not T_MIN * 1.001 < temperature < T_MAX / 1.001


def _bins(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    # Bin i holds confidences in (i/n, (i+1)/n]; a confidence of exactly 0 cannot occur
    # for a softmax's maximum (it is at least 1/n_classes), so the first bin is closed.
    return np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def reliability(probs: np.ndarray, y: np.ndarray, n_bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Per confidence bin: its bounds, how many images, their mean confidence and accuracy.

    Empty bins are listed with ``count`` 0 and ``None`` for the means, so the diagram's
    x axis is the same for every run.
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    which = _bins(confidence, n_bins)
    rows = []
    for i in range(n_bins):
        sel = which == i
        n = int(sel.sum())
        rows.append({"lower": i / n_bins, "upper": (i + 1) / n_bins, "count": n,
                     "confidence": float(confidence[sel].mean()) if n else None,
                     "accuracy": float(correct[sel].mean()) if n else None})
    return rows


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over bins of share × |accuracy − confidence|."""
    total = len(y)
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"])
                     for b in reliability(probs, y, n_bins) if b["count"]))


def brier(probs: np.ndarray, y: np.ndarray) -> float:
    """Multi-class Brier score: mean over images of ``sum_k (p_k − [k = y])²``."""
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(y)), y] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def top_k_accuracy(probs: np.ndarray, y: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the ``k`` most probable."""
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == y[:, None]).any(axis=1).mean())


def scores(logits: np.ndarray, y: np.ndarray, temperature: float) -> dict[str, Any]:
    """ECE, Brier and the reliability bins before (T = 1) and after calibration."""
    before, after = softmax(logits), softmax(logits, temperature)
    return {
        "ece": {"before": ece(before, y), "after": ece(after, y)},
        "brier": {"before": brier(before, y), "after": brier(after, y)},
        "nll": {"before": nll(logits, y), "after": nll(logits, y, temperature)},
        "mean_confidence": {"before": float(before.max(axis=1).mean()),
                            "after": float(after.max(axis=1).mean())},
        "reliability": {"bins": ECE_BINS, "before": reliability(before, y),
                        "after": reliability(after, y)},
    }
