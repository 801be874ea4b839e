"""StandardScaler + PCA against independent references (scikit-learn and Spark's own PCA)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featurize.config import FEATURE_DIM
from featurize.errors import ReducerError
from featurize.reduce.moments import (
    MAX_PARTIALS_TO_DRIVER, MomentStats, merge_tree, moment_stats,
)
from featurize.reduce.pca import choose_k, fit_reducer, project, write_projection

pytestmark = pytest.mark.spark


def synthetic_features(n: int = 150, seed: int = 0) -> np.ndarray:
    """Low-rank structure + noise, non-negative like ReLU features, two dead columns."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 12)) * np.linspace(5, 0.5, 12)
    mixing = rng.normal(size=(12, FEATURE_DIM))
    x = np.maximum(latent @ mixing + rng.normal(scale=0.5, size=(n, FEATURE_DIM)) + 3, 0)
    x[:, [7, 900]] = 0.0
    return x.astype(np.float32)


def standardise(x: np.ndarray) -> np.ndarray:
    """Spark's StandardScaler semantics: unbiased std, zero-variance columns → 0."""
    x = x.astype(np.float64)
    std = x.std(axis=0, ddof=1)
    centred = x - x.mean(axis=0)
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)


def frame(spark, x: np.ndarray):
    pdf = pd.DataFrame({
        "path": [f"file:/x/{i}.jpg" for i in range(len(x))],
        "label": [str(i % 3) for i in range(len(x))],
        "features": [row.tolist() for row in x],
    })
    return spark.createDataFrame(pdf, "path string, label string, features array<float>")


def assert_same_up_to_sign(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    assert a.shape == b.shape
    for j in range(a.shape[1]):
        sign = np.sign(np.dot(a[:, j], b[:, j])) or 1.0
        np.testing.assert_allclose(a[:, j], sign * b[:, j], atol=atol, err_msg=f"component {j}")


def test_moment_stats_merge_equals_numpy():
    x = synthetic_features(60).astype(np.float64)
    merged = MomentStats.of(x[:13]).merge(MomentStats.of(x[13:40])).merge(MomentStats.of(x[40:]))
    np.testing.assert_allclose(merged.mean, x.mean(axis=0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(merged.covariance(), np.cov(x, rowvar=False), rtol=1e-8, atol=1e-8)


def test_moments_merge_on_the_executors_whatever_the_partition_count(spark):
    """37 partitions (some of them empty) become at most MAX_PARTIALS_TO_DRIVER partials
    before the driver sees them (two levels: 37 -> 5 -> 1; small vectors, the merge
    does not care), and the job's moment pass over 9 partitions equals NumPy."""
    small = np.random.default_rng(1).normal(size=(70, 8))
    parts = spark.sparkContext.parallelize(
        [MomentStats.of(small[i:i + 2]) for i in range(0, 70, 2)], 37)  # 35 partials
    merged = merge_tree(parts)
    sizes = merged.glom().map(len).collect()
    assert len(sizes) <= MAX_PARTIALS_TO_DRIVER and max(sizes) == 1
    total = merged.reduce(MomentStats.merge)
    assert total.n == 70
    np.testing.assert_allclose(total.covariance(), np.cov(small, rowvar=False), rtol=1e-10,
                               atol=1e-12)
    x = synthetic_features(70).astype(np.float64)
    df = frame(spark, x.astype(np.float32)).repartition(9)
    stats = moment_stats(df)
    assert stats.n == 70
    ref = x.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(stats.mean, ref.mean(axis=0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(stats.covariance(), np.cov(ref, rowvar=False), rtol=1e-8,
                               atol=1e-8)


def test_choose_k_boundaries():
    assert choose_k([0.6, 0.3, 0.1], 1.0) == 3
    assert choose_k([0.6, 0.3, 0.1], 0.6) == 1
    assert choose_k([0.6, 0.3, 0.1], 0.95) == 3


def test_pca_matches_scikit_learn(spark):
    from sklearn.decomposition import PCA as SkPCA

    x = synthetic_features()
    df = frame(spark, x).repartition(3)  # the moments really merge across partitions
    model, summary = fit_reducer(df, len(x), k=10, variance=None)
    ref = SkPCA(n_components=10, svd_solver="full").fit(standardise(x))
    assert summary.k == 10 and summary.requested_k == 10
    np.testing.assert_allclose(summary.explained_variance, ref.explained_variance_ratio_,
                               rtol=1e-5, atol=1e-7)
    projected = project(model, df)
    assert projected.schema.simpleString() == (
        "struct<path:string,label:string,pca_features:array<float>>")
    got = projected.orderBy("path").toPandas()
    order = np.argsort([f"file:/x/{i}.jpg" for i in range(len(x))])
    ours = np.stack(got["pca_features"].to_numpy())
    assert ours.shape == (len(x), 10)
    expected = ref.transform(standardise(x))[order]
    assert_same_up_to_sign(ours.astype(np.float64), expected, atol=2e-3 * np.abs(expected).max())


def test_worker_projection_equals_spark_ml_transform(spark, tmp_path, monkeypatch):
    """The featurize job's pca/ (NumPy in the workers) against Spark ML's transform of
    the same model: dead columns (std 0), several partitions, batches cut in chunks."""
    import featurize.reduce.pca as reduce

    monkeypatch.setattr(reduce, "_CHUNK_ROWS", 7)  # 150 rows: chunks of 7 and a rest
    x = synthetic_features(150, seed=4)
    df = frame(spark, x).repartition(3)
    model, _ = fit_reducer(df, len(x), k=25, variance=None)
    write_projection(model, df, str(tmp_path / "pca"))
    got = spark.read.parquet(str(tmp_path / "pca"))
    assert got.schema.simpleString() == (
        "struct<path:string,label:string,pca_features:array<float>>")
    ours = got.orderBy("path").toPandas()
    ref = project(model, df).orderBy("path").toPandas()
    assert list(ours["path"]) == list(ref["path"]) and list(ours["label"]) == list(ref["label"])
    a, b = np.stack(ours["pca_features"]), np.stack(ref["pca_features"])
    assert a.shape == (150, 25)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(b).max())
    # and the empty case writes an empty, typed output
    write_projection(model, df.limit(0), str(tmp_path / "none"))
    assert spark.read.parquet(str(tmp_path / "none")).count() == 0


def test_variance_mode_picks_k_like_the_reference(spark):
    from sklearn.decomposition import PCA as SkPCA

    x = synthetic_features(120, seed=3)
    full = SkPCA(svd_solver="full").fit(standardise(x)).explained_variance_ratio_
    expected_k = int(np.searchsorted(np.cumsum(full), 0.9) + 1)
    model, summary = fit_reducer(frame(spark, x), len(x), k=None, variance=0.9)
    assert summary.k == expected_k
    assert summary.requested_variance == 0.9 and summary.requested_k is None
    assert summary.cumulative[-1] >= 0.9 > summary.cumulative[-2]
    assert model.stages[1].getK() == expected_k


def test_scaler_equals_sparks_own_and_model_survives_save_load(spark, tmp_path):
    """The scaler stage equals Spark's own StandardScaler fit; the saved model reloads.

    (Spark's own PCA.fit is not used as a reference: on this 80 x 1280 rank-deficient
    input, repeated fits in one session returned two different explained-variance
    vectors, 0.186 and 0.071 for the first component, while NumPy and scikit-learn agree
    with ours. See docs/PERFORMANCE.md, "PCA".)
    """
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import StandardScaler
    from pyspark.ml.functions import array_to_vector

    x = synthetic_features(80, seed=5)
    df = frame(spark, x)
    model, summary = fit_reducer(df, len(x), k=4, variance=None)
    spark_scaler = StandardScaler(inputCol="v", outputCol="s", withMean=True, withStd=True).fit(
        df.select(array_to_vector("features").alias("v")))
    np.testing.assert_allclose(model.stages[0].mean.toArray(), spark_scaler.mean.toArray(),
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(model.stages[0].std.toArray(), spark_scaler.std.toArray(),
                               rtol=1e-9, atol=1e-9)
    assert model.stages[0].getWithMean() and model.stages[0].getWithStd()
    before = np.stack(project(model, df).orderBy("path").toPandas()["pca_features"])
    model.write().save(str(tmp_path / "pca"))
    loaded = PipelineModel.load(str(tmp_path / "pca"))
    assert [type(st).__name__ for st in loaded.stages] == ["StandardScalerModel", "PCAModel"]
    after = np.stack(project(loaded, df).orderBy("path").toPandas()["pca_features"])
    np.testing.assert_array_equal(before, after)
    np.testing.assert_allclose(loaded.stages[1].explainedVariance.toArray(),
                               summary.explained_variance, rtol=1e-12)


def test_k_larger_than_rows_is_refused(spark):
    x = synthetic_features(5)
    with pytest.raises(ReducerError, match="--pca-k 6 is larger than the 5 featurized"):
        fit_reducer(frame(spark, x), 5, k=6, variance=None)
