"""Calibration: the temperature, the scores, and the cross-validated regularisation.

The NumPy parts are checked against plain-loop references and against data whose true
probabilities are known by construction; the Spark parts against the regression's own
coefficients (``W x + b``), not against Spark's transform.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from featurize.classifier import calibration
from featurize.classifier.classify import (
    REG_GRID, ClassifierParams, cross_validate, fit_classifier, labels_of, predict,
)
from featurize.errors import ClassifierError


def calibrated_logits(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.5, size=(n, classes))
    p = calibration.softmax(z)
    y = np.array([rng.choice(classes, p=row) for row in p])
    return z, y


def ece_of(confidences: list[float], correct: list[bool], n_bins: int = 15) -> float:
    """Expected calibration error written out: bins (i/n, (i+1)/n], one image at a time."""
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for conf, ok in zip(confidences, correct):
        i = min(max(math.ceil(conf * n_bins) - 1, 0), n_bins - 1)
        bins[i].append((conf, ok))
    total = 0.0
    for members in bins:
        if members:
            acc = sum(ok for _, ok in members) / len(members)
            conf = sum(c for c, _ in members) / len(members)
            total += len(members) / len(confidences) * abs(acc - conf)
    return total


def ece_loop(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    rows = probs.tolist()
    return ece_of([max(r) for r in rows], [r.index(max(r)) == label
                                          for r, label in zip(rows, y.tolist())], n_bins)


def test_scores_match_plain_loops():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(500, 7)) * 3
    y = rng.integers(0, 7, 500)
    p = calibration.softmax(z)
    assert calibration.ece(p, y) == pytest.approx(ece_loop(p, y), abs=1e-12)
    brier = np.mean([sum((p[i, k] - (k == y[i])) ** 2 for k in range(7)) for i in range(500)])
    assert calibration.brier(p, y) == pytest.approx(brier, abs=1e-12)
    top5 = np.mean([y[i] in sorted(range(7), key=lambda k: -p[i, k])[:5] for i in range(500)])
    assert calibration.top_k_accuracy(p, y, 5) == pytest.approx(top5)
    assert calibration.top_k_accuracy(p, y, 7) == 1.0
    nll = -np.mean([math.log(p[i, y[i]]) for i in range(500)])
    assert calibration.nll(z, y) == pytest.approx(nll, rel=1e-12)
    bins = calibration.reliability(p, y)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 500
    # Large logits do not overflow.
    assert calibration.softmax(np.array([[1000.0, 0.0]]))[0, 0] == 1.0


@pytest.mark.parametrize("scale,expect", [(3.0, 3.0), (0.5, 0.5)])
def test_the_fitted_temperature_undoes_a_known_miscalibration(scale, expect):
    """Logits scaled by 3 are over-confident (T ≈ 3 > 1), by 0.5 under-confident
    (T ≈ 0.5); dividing by the fitted T brings the ECE down to that of the calibrated
    logits, and the winning class never changes."""
    z, y = calibrated_logits(6000, 6, seed=2)
    bent = z * scale
    t = calibration.fit_temperature(bent, y)
    assert t == pytest.approx(expect, rel=0.1)
    assert (t > 1) == (scale > 1)
    before = calibration.ece(calibration.softmax(bent), y)
    after = calibration.ece(calibration.softmax(bent, t), y)
    reference = calibration.ece(calibration.softmax(z), y)
    assert before > 0.05 and after < before / 3
    assert after == pytest.approx(reference, abs=0.01)
    assert (calibration.softmax(bent, t).argmax(1) == bent.argmax(1)).all()
    # The NLL at T is the minimum of a fine grid of temperatures around it.
    grid = [calibration.nll(bent, y, t * f) for f in np.linspace(0.8, 1.25, 46)]
    assert calibration.nll(bent, y, t) <= min(grid) + 1e-9


def test_a_temperature_the_held_out_logits_cannot_determine_is_flagged():
    """Every held-out image right: the likelihood rises as T → 0 and the fit runs to the
    end of its interval; at_bound says so (train then keeps T = 1)."""
    z, y = calibrated_logits(300, 4, seed=8)
    y = z.argmax(axis=1)  # all right
    t = calibration.fit_temperature(z, y)
    assert t == pytest.approx(calibration.T_MIN, rel=1e-3) and calibration.at_bound(t)
    assert not calibration.at_bound(calibration.fit_temperature(*calibrated_logits(300, 4, 9)))


def test_fit_temperature_refuses_mismatched_input():
    with pytest.raises(ValueError, match="do not match"):
        calibration.fit_temperature(np.zeros((3, 2)), np.zeros(2, dtype=int))


def blobs(spark, per_class: int, *, spread: float, flip: float, seed: int, dim: int = 12):
    """Three Gaussian blobs on the axes; a share ``flip`` of labels replaced at random."""
    rng = np.random.default_rng(seed)
    rows = []
    for c, label in enumerate("abc"):
        centre = np.zeros(dim)
        centre[c] = 3.0
        for i in range(per_class):
            x = centre + rng.normal(0.0, spread, dim)
            shown = label if rng.random() >= flip else "abc"[rng.integers(3)]
            rows.append((f"file:/b/{label}/{seed}-{i}.jpg", shown, x.astype(float).tolist()))
    return spark.createDataFrame(rows, "path string, label string, pca_features array<float>")


@pytest.mark.spark
def test_cross_validation_regularises_tiny_noisy_data_more(spark):
    params = ClassifierParams(reg_param=None, max_iter=50)
    tiny = cross_validate(blobs(spark, 8, spread=2.5, flip=0.4, seed=3), params, REG_GRID)
    large = cross_validate(blobs(spark, 60, spread=0.4, flip=0.0, seed=4), params, REG_GRID)
    assert set(tiny.scores) == set(large.scores) == set(REG_GRID)
    assert tiny.scores[tiny.reg_param] == min(tiny.scores.values())
    assert large.scores[large.reg_param] == min(large.scores.values())
    assert tiny.reg_param > large.reg_param, (tiny.scores, large.scores)
    # Out of fold: every training row scored once, by a model that did not see it.
    assert tiny.oof_logits.shape == (24, 3) and len(large.oof_labels) == 180
    assert sorted(np.bincount(large.oof_labels).tolist()) == [60, 60, 60]
    # The refitted model is the chosen regParam's.
    assert large.model.stages[1].getRegParam() == large.reg_param


@pytest.mark.spark
def test_cross_validation_needs_as_many_images_as_folds(spark):
    with pytest.raises(ClassifierError, match="cannot be split into 3"):
        cross_validate(blobs(spark, 1, spread=1.0, flip=0.0, seed=5).limit(2),
                       ClassifierParams(reg_param=0.01), (0.01,))


@pytest.mark.spark
def test_predict_applies_the_temperature_and_keeps_the_winner(spark):
    df = blobs(spark, 20, spread=1.5, flip=0.1, seed=6)
    model = fit_classifier(df, ClassifierParams(reg_param=1e-3, max_iter=100))
    lr = model.stages[1]
    w, b = lr.coefficientMatrix.toArray(), lr.interceptVector.toArray()
    labels = labels_of(model)
    rows = {r["path"]: np.asarray(r["pca_features"]) for r in df.collect()}
    plain = {r["path"]: r for r in predict(model, df).collect()}
    for t in (1.0, 2.5, 0.4):
        for r in predict(model, df, t).collect():
            z = w @ rows[r["path"]] + b
            expected = calibration.softmax(z[None, :], t)[0]
            got = np.array([r["probabilities"][x] for x in labels])
            assert np.abs(got - expected).max() < 1e-12
            assert r["confidence"] == pytest.approx(expected.max(), abs=1e-12)
            assert r["predicted_label"] == plain[r["path"]]["predicted_label"]
            assert r["predicted_label"] == labels[int(np.argmax(z))]
    with pytest.raises(ValueError, match="positive"):
        predict(model, df, 0.0)


def test_reg_param_flag_and_the_summary_lines():
    from featurize.review.summary import format_confidence
    from jobs.train_classifier import build_parser

    parse = build_parser().parse_args
    assert parse(["--run", "r"]).reg_param is None and parse(["--run", "r"]).calibrate
    assert parse(["--run", "r", "--reg-param", "AUTO"]).reg_param is None
    assert parse(["--run", "r", "--reg-param", "0.01", "--no-calibrate"]).calibrate is False
    for bad in ("lots", "-1", "nan"):
        with pytest.raises(SystemExit):
            parse(["--run", "r", "--reg-param", bad])
    metrics = {
        "model": {"reg_param": 0.01},
        "reg_param_search": {"auto": True, "folds": 3, "scores": [
            {"reg_param": r, "log_loss": 1.0} for r in REG_GRID]},
        "calibration": {"method": "temperature", "temperature": 1.8},
        "ece": {"before": 0.094, "after": 0.021}, "brier": {"before": 0.41, "after": 0.37},
        "top5_accuracy": 0.97,
    }
    assert format_confidence(metrics) == [
        "regParam      : 0.01, chosen by 3-fold cross-validation over 0.001, 0.01, 0.1, 1",
        "confidence    : temperature 1.800; test ECE 0.0940 -> 0.0210, Brier 0.4100 -> "
        "0.3700; top-5 accuracy 0.9700"]
    # A run trained before calibration existed: its regParam, nothing else.
    assert format_confidence({"model": {"reg_param": 0.001}}) == ["regParam      : 0.001 (given)"]


@pytest.mark.spark
def test_folds_are_stratified_and_never_empty(spark):
    from featurize.classifier.split import with_folds

    # 10 labels of 2 training images each (the entry-point test's shape): per-label
    # round-robin alone would leave fold 2 empty.
    rows = [(f"file:/f/{c}/{i}.jpg", str(c), [float(i)]) for c in range(10) for i in range(2)]
    df = spark.createDataFrame(rows, "path string, label string, pca_features array<float>")
    folds = with_folds(df, 3, seed=0).collect()
    sizes = np.bincount([r["_fold"] for r in folds], minlength=3)
    assert sorted(sizes.tolist()) == [6, 7, 7]
    for c in range(10):  # a label's two images are in two different folds
        assert len({r["_fold"] for r in folds if r["label"] == str(c)}) == 2
    big = with_folds(blobs(spark, 31, spread=1.0, flip=0.0, seed=7), 3, seed=0).collect()
    per = {(r["label"], r["_fold"]) for r in big}
    assert len(per) == 9  # every label in every fold
    for label in "abc":
        n = [sum(1 for r in big if r["label"] == label and r["_fold"] == f) for f in range(3)]
        assert max(n) - min(n) <= 1 and sum(n) == 31
