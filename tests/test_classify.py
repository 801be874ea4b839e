"""The classifier stage's pieces against independent references (scikit-learn)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featurize.classifier.classify import (
    ClassifierParams, evaluate, fit_classifier, predict,
)
from featurize.classifier.split import (
    read_split_file, split_by_file, stratified_split, with_folds,
)
from featurize.errors import ClassifierError

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


def window_reference(df, test_fraction: float, seed: int, folds: int):
    """The assignment as it was computed before (a window per label), as the reference:
    {path: is_test} and {path: fold}."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    name = F.element_at(F.split(F.col("path"), "/"), -1)
    within = Window.partitionBy("label").orderBy(F.xxhash64(name, F.lit(seed)), "path")
    ranked = df.withColumn("_rank", F.row_number().over(within)).withColumn(
        "_n", F.count(F.lit(1)).over(Window.partitionBy("label")))
    n_test = F.least(F.greatest(F.round(F.col("_n") * F.lit(test_fraction)), F.lit(1)),
                     F.col("_n") - 1)
    counts = sorted((r["label"], r["count"]) for r in df.groupBy("label").count().collect())
    offsets, start = {}, 0
    for label, n in counts:
        offsets[label] = start % folds
        start += n
    offset = F.create_map(*[F.lit(x) for kv in offsets.items() for x in kv])[F.col("label")]
    rows = ranked.select("path", (F.col("_rank") <= n_test).alias("test"),
                         ((F.col("_rank") - 1 + offset) % folds).alias("fold")).collect()
    return {r["path"]: r["test"] for r in rows}, {r["path"]: r["fold"] for r in rows}


@pytest.mark.parametrize("sizes,fraction,seed", [
    ({"a": 10, "b": 7, "c": 3}, 0.3, 1), ({"a": 10, "b": 7, "c": 3}, 0.25, 5),
    ({f"l{i}": 2 + 7 * i for i in range(9)} | {"ü": 40}, 0.2, 0),
    ({"x": 5, "Y": 11}, 0.5, 3)])
def test_split_and_folds_equal_the_per_label_window_assignment(spark, sizes, fraction, seed):
    """The sort-based assignment is the per-label window one, row for row: the same
    test rows (stratified, exact counts) and the same folds, across several shuffle
    partitions (so the sort really is cut into ranges)."""
    df = pca_frame(spark, seed=seed, sizes=sizes).repartition(5)
    is_test, fold = window_reference(df, fraction, seed, 3)
    train, test = stratified_split(df, fraction, seed)
    got_test = {r["path"] for r in test.collect()}
    assert got_test == {p for p, t in is_test.items() if t}
    assert {r["path"] for r in train.collect()} == {p for p, t in is_test.items() if not t}
    folds = {r["path"]: r["_fold"] for r in with_folds(df, 3, seed).collect()}
    assert folds == fold


def test_split_file(spark, tmp_path):
    split = tmp_path / "split.csv"
    split.write_text("split,label,file\nTraining,a,0.jpg\nTest,a,1.jpg\nTraining,b,0.jpg\n"
                     "Test,b,1.jpg\nTest,c,0.jpg\n")
    train, test, missing = split_by_file(pca_frame(spark), read_split_file(spark, str(split)))
    assert sorted(r["path"] for r in train.collect()) == ["file:/x/a/0.jpg", "file:/x/b/0.jpg"]
    assert sorted(r["path"] for r in test.collect()) == [
        "file:/x/a/1.jpg", "file:/x/b/1.jpg", "file:/x/c/0.jpg"]
    assert missing == sum(LABEL_SIZES.values()) - 5
    bad = tmp_path / "bad.csv"
    bad.write_text("Training,a,1.jpg\nValidation,a,0.jpg\n")
    with pytest.raises(ClassifierError, match="bad.csv: expected 'Training\\|Test,<label>,"
                                              "<file>' lines, got \\['Validation', 'a'"):
        read_split_file(spark, str(bad))


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
