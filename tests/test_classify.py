"""The classifier stage's pieces against independent references (scikit-learn)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featurize.errors import ClassifierError
from featurize.classify import (
    ClassifierParams, evaluate, fit_classifier, parse_split_file, predict, split_by_file,
    stratified_split,
)

pytestmark = pytest.mark.spark

LABEL_SIZES = {"a": 10, "b": 7, "c": 3}


def pca_frame(spark, seed: int = 0, sizes=LABEL_SIZES, dim: int = 4):
    rng = np.random.default_rng(seed)
    rows = []
    for j, (label, n) in enumerate(sizes.items()):
        centre = np.zeros(dim)
        centre[j % dim] = 6.0
        for i in range(n):
            rows.append((f"file:/x/{label}/{i}.jpg", label,
                         (centre + rng.normal(size=dim)).astype(float).tolist()))
    return spark.createDataFrame(rows, "path string, label string, pca_features array<float>")


def test_stratified_split_is_exact_and_deterministic(spark):
    df = pca_frame(spark)
    train, test = stratified_split(df, 0.3, seed=1)
    test_counts = dict(test.groupBy("label").count().collect())
    train_counts = dict(train.groupBy("label").count().collect())
    # round(n * 0.3), at least 1, at most n - 1
    assert test_counts == {"a": 3, "b": 2, "c": 1}
    assert train_counts == {"a": 7, "b": 5, "c": 2}
    paths = lambda d: sorted(r["path"] for r in d.collect())  # noqa: E731
    assert set(paths(train)).isdisjoint(paths(test))
    assert paths(test) == paths(stratified_split(df, 0.3, seed=1)[1])
    assert paths(test) != paths(stratified_split(df, 0.3, seed=2)[1])


def test_stratified_split_refuses_singleton_labels(spark):
    df = pca_frame(spark, sizes={"a": 5, "lonely": 1})
    with pytest.raises(ClassifierError, match="lonely"):
        stratified_split(df, 0.2, seed=0)


def test_split_file(spark):
    mapping = parse_split_file("Training,a,0.jpg\nTest,a,1.jpg\nTraining,b,0.jpg\n"
                               "Test,b,1.jpg\nTest,c,0.jpg\n", "split.csv")
    assert mapping[("a", "1.jpg")] == "test"
    train, test, missing = split_by_file(spark, pca_frame(spark), mapping)
    assert sorted(r["path"] for r in train.collect()) == ["file:/x/a/0.jpg", "file:/x/b/0.jpg"]
    assert sorted(r["path"] for r in test.collect()) == [
        "file:/x/a/1.jpg", "file:/x/b/1.jpg", "file:/x/c/0.jpg"]
    assert missing == sum(LABEL_SIZES.values()) - 5
    with pytest.raises(ClassifierError, match="bad.csv:1: expected 'Training\\|Test"):
        parse_split_file("Validation,a,0.jpg\n", "bad.csv")


def test_evaluate_matches_scikit_learn(spark):
    from sklearn import metrics as skm

    rng = np.random.default_rng(3)
    labels = ["cat", "dog", "eel", "fox"]
    true = rng.choice(labels, 200)
    pred = np.where(rng.random(200) < 0.7, true, rng.choice(labels, 200))
    df = spark.createDataFrame(pd.DataFrame({"label": true, "predicted_label": pred}))
    got = evaluate(df, labels)
    assert got["n"] == 200
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(true, pred))
    assert got["macro_f1"] == pytest.approx(skm.f1_score(true, pred, average="macro"))
    assert got["confusion_matrix"] == skm.confusion_matrix(true, pred, labels=labels).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(true, pred, labels=labels)
    for i, label in enumerate(labels):
        assert got["per_class"][label]["precision"] == pytest.approx(p[i])
        assert got["per_class"][label]["recall"] == pytest.approx(r[i])
        assert got["per_class"][label]["f1"] == pytest.approx(f[i])
        assert got["per_class"][label]["support"] == s[i]


def test_fit_and_predict_probabilities(spark):
    df = pca_frame(spark, sizes={"a": 20, "b": 20, "c": 20})
    model = fit_classifier(df, ClassifierParams(reg_param=0.01, max_iter=100))
    out = predict(model, df.drop("label"))
    assert out.schema.simpleString() == (
        "struct<path:string,predicted_label:string,confidence:double,"
        "probabilities:map<string,double>>")
    rows = out.collect()
    assert len(rows) == 60
    for r in rows:
        probs = r["probabilities"]
        assert set(probs) == {"a", "b", "c"}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
        assert r["confidence"] == pytest.approx(max(probs.values()))
        assert r["predicted_label"] == max(probs, key=probs.get)
    truth = {r["path"]: r["label"] for r in df.collect()}
    accuracy = np.mean([truth[r["path"]] == r["predicted_label"] for r in rows])
    assert accuracy == 1.0  # well-separated clusters
