"""StandardScaler + PCA: fitting the reducer from the features' moments
(:mod:`featurize.reduce.moments`), choosing k, and projecting features with it."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.feature import PCAModel, StandardScalerModel
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from featurize.config import FEATURE_DIM
from featurize.errors import ReducerError
from featurize.reduce.moments import MomentStats, moment_stats

logger = logging.getLogger(__name__)

_VEC = "_features_vec"
_SCALED = "_scaled"
_PCA = "_pca_vec"


@dataclass(frozen=True)
class PcaSummary:
    """What the manifest records about the fitted PCA."""

    k: int
    explained_variance: list[float]
    requested_k: int | None
    requested_variance: float | None

    @property
    def cumulative(self) -> list[float]:
        return [float(x) for x in np.cumsum(self.explained_variance)]

    def to_manifest(self) -> dict[str, Any]:
        cumulative = self.cumulative
        return {
            "k": self.k,
            "requested_k": self.requested_k,
            "requested_variance": self.requested_variance,
            "explained_variance": self.explained_variance,
            "cumulative_explained_variance": cumulative,
            "total_explained_variance": cumulative[-1] if cumulative else 0.0,
        }


def choose_k(explained: np.ndarray | list[float], variance: float) -> int:
    """Fewest leading components whose cumulative explained variance reaches ``variance``.

    Examples
    --------
    >>> choose_k([0.5, 0.3, 0.15, 0.05], 0.8)
    2
    >>> choose_k([0.5, 0.3, 0.15, 0.05], 0.81)
    3
    """
    cumulative = np.cumsum(np.asarray(explained, dtype=np.float64))
    # A tolerance so 0.95 is "reached" by a cumulative sum of 0.9499999999.
    idx = int(np.searchsorted(cumulative, variance - 1e-9, side="left"))
    return min(idx + 1, len(cumulative))


def _as_vectors(features: DataFrame) -> DataFrame:
    return features.select("path", "label", array_to_vector("features").alias(_VEC))


#: At most this many partial moments reach the driver, whatever the partition count:
#: each is a 1280 x 1280 float64 matrix (13 MB), and a cluster's read of features/ has
#: hundreds of partitions (the driver's heap on EMR is 1 GiB).
MAX_PARTIALS_TO_DRIVER = 4
#: How the PCA passes read ``features/``: in splits of up to 256 MB of parquet whatever
#: the cluster's parallelism or the file count (a task streams its split in Arrow batches,
#: so its memory stays flat). With Spark's defaults a read splits into about
#: ``spark.default.parallelism`` partitions and packs files by a 4 MB open cost, so 200
#: tiny files at parallelism 400 were 200 tasks, and ``pca/`` got a file per task; here
#: ``pca/`` files grow with the run (a 256 MB split of features at k = 300 is ~60 MB of
#: ``pca/``), and small runs are read in a task or two.
FEATURES_READ_CONF = {
    "spark.sql.files.maxPartitionBytes": str(256 * 1024 * 1024),
    "spark.sql.files.openCostInBytes": str(8 * 1024),
    "spark.sql.files.minPartitionNum": "1",
}


def inverse_std(std: np.ndarray) -> np.ndarray:
    """1/std, and 0 where std is 0: Spark's StandardScaler maps a constant feature to 0.

    >>> inverse_std(np.array([2.0, 0.0]))
    array([0.5, 0. ])
    """
    return np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)


def principal_components(stats: MomentStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(std, eigenvectors as columns, explained-variance ratios), largest first.

    The PCA that ``StandardScaler(withMean, withStd) → PCA`` computes: eigen-decomposition
    of the covariance of the standardised features (the correlation matrix; a feature
    with zero variance standardises to 0, as in Spark).
    """
    cov = stats.covariance()
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    inv = inverse_std(std)
    corr = cov * np.outer(inv, inv)
    eigvals, eigvecs = np.linalg.eigh(corr)
    order = np.argsort(eigvals)[::-1]
    eigvals = np.clip(eigvals[order], 0.0, None)
    total = eigvals.sum()
    explained = eigvals / total if total > 0 else eigvals
    return std, eigvecs[:, order], explained


def _spark_models(
    features: DataFrame, std: np.ndarray, mean: np.ndarray, pc: np.ndarray,
    explained: np.ndarray,
) -> PipelineModel:
    """Wrap fitted numbers in Spark ML's own StandardScalerModel and PCAModel.

    Spark's ``PCA.fit`` runs a full 1280x1280 SVD in the JVM (several seconds without a
    native LAPACK) and the variance mode would need it twice; the same decomposition in
    NumPy takes a fraction of a second. The resulting PipelineModel is an ordinary Spark
    ML model: it saves, loads and transforms exactly like a fitted one.
    """
    from pyspark.ml.common import _py2java
    from pyspark.ml.linalg import DenseMatrix, DenseVector

    sc = features.sparkSession.sparkContext
    jvm = sc._jvm  # type: ignore[attr-defined]
    new_uid = jvm.org.apache.spark.ml.util.Identifiable.randomUID
    j_scaler = jvm.org.apache.spark.ml.feature.StandardScalerModel(
        new_uid("stdScal"),
        _py2java(sc, DenseVector(std)),
        _py2java(sc, DenseVector(mean)),
    )
    scaler = StandardScalerModel(j_scaler)
    scaler._set(inputCol=_VEC, outputCol=_SCALED, withMean=True, withStd=True)
    k = pc.shape[1]
    j_pca = jvm.org.apache.spark.ml.feature.PCAModel(
        new_uid("pca"),
        _py2java(sc, DenseMatrix(pc.shape[0], k, pc.flatten(order="F").tolist())),
        _py2java(sc, DenseVector(explained)),
    )
    pca = PCAModel(j_pca)
    pca._set(k=k, inputCol=_SCALED, outputCol=_PCA)
    for stage in (scaler, pca):
        stage._transfer_params_to_java()
    return PipelineModel(stages=[scaler, pca])


def fit_reducer(
    features: DataFrame,
    n_rows: int,
    k: int | None = None,
    variance: float | None = 0.95,
) -> tuple[PipelineModel, PcaSummary]:
    """Fit StandardScaler(withMean, withStd) → PCA on a *materialised* features frame.

    One Spark pass computes the mean and covariance; the eigen-decomposition runs on the
    driver. The result is a Spark ML ``PipelineModel`` (``StandardScalerModel``,
    ``PCAModel``) equal to what ``Pipeline([StandardScaler, PCA]).fit`` returns, up to
    the sign of each component.

    Parameters
    ----------
    features : DataFrame
        With ``features: array<float>``, read back from parquet (or persisted): never a
        frame whose evaluation would run the CNN again.
    n_rows : int
        Number of rows in ``features`` (known to the caller; bounds k).
    k : int, optional
        Number of components. Wins over ``variance``.
    variance : float, optional
        Keep the fewest components reaching this cumulative explained variance.

    Returns
    -------
    (PipelineModel, PcaSummary)
    """
    if n_rows < 1:
        raise ReducerError("PCA needs at least one featurized image; none decoded.")
    max_k = min(n_rows, FEATURE_DIM)
    if k is not None and k > max_k:
        raise ReducerError(
            f"--pca-k {k} is larger than the {n_rows} featurized images allow (at most "
            f"{max_k}); lower --pca-k or add images."
        )
    stats = moment_stats(features)
    if stats.n != n_rows:
        raise ReducerError(
            f"features/ holds {stats.n} rows but the featurize pass counted {n_rows} "
            f"featurized images: rows were written twice or lost (a task's output committed "
            f"twice, or a file removed during the run). Rerun with --overwrite.")
    std, vectors, explained = principal_components(stats)
    if k is None:
        assert variance is not None
        k = min(choose_k(explained, variance), max_k)
        logger.info("PCA: %d components reach %.4f of the variance", k, variance)
    model = _spark_models(features, std, stats.mean, vectors[:, :k], explained[:k])
    return model, PcaSummary(
        k, [float(x) for x in explained[:k]],
        k if variance is None else None, variance,
    )


def model_fingerprint(model: PipelineModel) -> str:
    """sha256 of a reducer's numbers (scaler mean and std, PCA components).

    Identifies the PCA model a classifier was trained on, whatever its path or uid.
    """
    import hashlib

    scaler, pca = model.stages
    h = hashlib.sha256()
    for arr in (scaler.mean.toArray(), scaler.std.toArray(), pca.pc.toArray()):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()


def project(model: PipelineModel, features: DataFrame) -> DataFrame:
    """Project a ``features`` DataFrame: → ``path, label, pca_features: array<float>``.

    Spark ML's own ``transform``: the predict job's projection, and the reference that
    :func:`write_projection` is tested against.
    """
    out = model.transform(_as_vectors(features))
    return out.select(
        "path", "label", vector_to_array(F.col(_PCA), dtype="float32").alias("pca_features")
    )


PROJECTION_SCHEMA = "path string, label string, pca_features array<float>"
_CHUNK_ROWS = 2048  # rows projected at once: ~21 MB of float64 in a worker


def write_projection(model: PipelineModel, features: DataFrame, path: str) -> None:
    """Write :func:`project`'s output for ``features`` to ``path`` (parquet), computed in
    NumPy in the Python workers: the featurize job's ``pca/``.

    The numbers are the model's own and the arithmetic is Spark ML's, in float64:
    ``(x - mean) * (1/std, 0 where std is 0)``, then the components, cast to float32
    (tested equal to :func:`project`). Why not ``transform``: on ``features`` read back
    from parquet the JVM path converts every row to a vector and multiplies without a
    native BLAS, and its task carries the 1280 x k matrix in its closure (Spark's "task
    of very large size" warning); here the matrix is broadcast once. Not used by the
    predict job, whose features come out of a Python UDF: a second Python stage after it
    would ship every row through Python again.
    """
    scaler, pca = model.stages
    numbers = features.sparkSession.sparkContext.broadcast(
        (scaler.mean.toArray(), inverse_std(scaler.std.toArray()), pca.pc.toArray()))

    def project_batches(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        mean, scale, pc = numbers.value
        for batch in batches:
            for start in range(0, batch.num_rows, _CHUNK_ROWS):
                chunk = batch.slice(start, _CHUNK_ROWS)
                vectors = chunk.column(2)
                if vectors.null_count:
                    raise ReducerError("features/ holds a row without features")
                x = vectors.flatten().to_numpy(zero_copy_only=False).reshape(
                    chunk.num_rows, -1)
                y = (((x.astype(np.float64) - mean) * scale) @ pc).astype(np.float32)
                lists = pa.FixedSizeListArray.from_arrays(pa.array(y.ravel()), y.shape[1])
                yield pa.RecordBatch.from_arrays(
                    [chunk.column(0), chunk.column(1), lists.cast(pa.list_(pa.float32()))],
                    names=["path", "label", "pca_features"])

    try:
        features.select("path", "label", "features").mapInArrow(
            project_batches, PROJECTION_SCHEMA).write.mode("errorifexists").parquet(path)
    finally:
        numbers.destroy()
