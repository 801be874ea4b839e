"""The cluster job: how a run's images group by themselves.

Spark ML ``KMeans`` on ``RUN/pca`` (the PCA features), k chosen by the silhouette
(Spark's ``ClusteringEvaluator``) over ``--k-min`` .. ``--k-max`` unless ``--k`` is
given: ``--restarts`` fits per k, and the smallest k within one standard deviation of
the best mean silhouette (:func:`choose_k`). Writes ``RUN/clusters/`` (parquet: ``path``,
``label``, ``cluster``, ``distance`` to its centre) and ``RUN/clusters.json`` (``k``, the
silhouette per candidate k, ``silhouette``, and when images have labels,
``adjusted_rand_index`` and ``purity`` against them). Both are replaced on every run.

The distance is the cosine by default (``--distance cosine``; KMeans, silhouette and
``distance`` alike): CNN features are compared by their direction. On Fruits-360 it gives
purer clusters and a better agreement with the labels than the squared Euclidean
distance (measured in docs/cli.md, "cluster_features").
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from math import comb
from typing import Any

import numpy as np
from pyspark.ml.clustering import KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.functions import array_to_vector
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from featurize.config import refuse_credentials
from featurize.encryption import Encryption
from featurize.errors import ConfigError
from featurize.manifest import FORMAT_VERSION, StageTimer, utc_now
from featurize.rundir import RunDir
from featurize.storage import filesystem
from featurize.storage.output import read_finished_run

logger = logging.getLogger(__name__)

CLUSTERS_COLUMNS = ("path", "label", "cluster", "distance")
#: --distance → Spark's distanceMeasure (KMeans and ClusteringEvaluator).
DISTANCES = {"cosine": "cosine", "euclidean": "euclidean"}


@dataclass(frozen=True)
class ClusterConfig:
    """Options of ``jobs/cluster_features.py``."""

    run: str
    #: A fixed k; None: the best silhouette in [k_min, k_max].
    k: int | None = None
    k_min: int = 2
    k_max: int = 20
    seed: int = 0
    max_iter: int = 50
    #: ``cosine`` or ``euclidean`` (KMeans and the silhouette: squared Euclidean).
    distance: str = "cosine"
    #: KMeans fits per k (seeds seed, seed+1, ...), the lowest training cost kept: one
    #: k-means|| start can settle in a poor local optimum and flip the silhouette's choice.
    restarts: int = 3
    #: ``--sse``: clusters/ and clusters.json are written under it.
    encryption: Encryption = field(default_factory=Encryption)

    def __post_init__(self) -> None:
        refuse_credentials("--run", self.run)
        if self.k is not None and self.k < 2:
            raise ConfigError(f"--k {self.k}: give at least 2")
        if not 2 <= self.k_min <= self.k_max:
            raise ConfigError(f"--k-min {self.k_min} --k-max {self.k_max}: need "
                              f"2 <= k-min <= k-max")
        if self.restarts < 1:
            raise ConfigError(f"--restarts {self.restarts}: give at least 1")
        if self.distance not in DISTANCES:
            raise ConfigError(f"--distance {self.distance}: choose {' or '.join(DISTANCES)}")

    def candidates(self, n: int) -> list[int]:
        """The k to try for ``n`` images (each k below n).

        Raises
        ------
        ConfigError
            No k fits: fewer than 3 images, or the range starts at n or above.
        """
        wanted = [self.k] if self.k is not None else list(range(self.k_min, self.k_max + 1))
        ks = [k for k in wanted if k < n]
        if not ks:
            raise ConfigError(f"{n} featurized images allow k up to {n - 1}; "
                              f"asked for {wanted[0]}..{wanted[-1]}")
        return ks


def choose_k(silhouettes: dict[int, list[float]]) -> int:
    """The k to keep, from each candidate's silhouettes (one per restart).

    A one-standard-deviation rule, after the one-standard-error rule of Hastie,
    Tibshirani and Friedman (*The Elements of Statistical Learning*, 7.10): the smallest k
    whose mean silhouette is within one standard deviation (population sd, over the
    restarts) of the best mean. The sd, not the standard error of the mean: the question
    is whether one more start of the best k could land below this k, and with 3 starts
    the standard error would be a noisy 1/sqrt(3) of an already noisy sd. KMeans restarts
    of one k differ by more than neighbouring k do (on Fruits-360, sd 0.004 to 0.05 per
    k), so the plain maximum is mostly the luckiest start; among the k the restarts
    cannot tell apart, the simplest is kept. With one restart (sd 0) this is the best
    silhouette, the smaller k on a tie.
    """
    means = {k: float(np.mean(v)) for k, v in silhouettes.items()}
    best = max(means, key=lambda k: (means[k], -k))
    floor = means[best] - float(np.std(silhouettes[best]))
    return min(k for k, m in means.items() if m >= floor)


def adjusted_rand_index(table: np.ndarray) -> float:
    """Hubert and Arabie's adjusted Rand index from a contingency table (labels ×
    clusters counts): 1 for the same partition, about 0 for an unrelated one."""
    table = np.asarray(table, dtype=np.int64)
    n = int(table.sum())
    pairs = sum(comb(int(v), 2) for v in table.ravel())
    rows = sum(comb(int(v), 2) for v in table.sum(axis=1))
    cols = sum(comb(int(v), 2) for v in table.sum(axis=0))
    expected = rows * cols / comb(n, 2) if n > 1 else 0.0
    best = (rows + cols) / 2
    return 1.0 if best == expected else float((pairs - expected) / (best - expected))


def purity(table: np.ndarray) -> float:
    """The share of images whose cluster's most common label is theirs."""
    table = np.asarray(table)
    return float(table.max(axis=0).sum() / table.sum())


def _sum(values: Any) -> Any:
    return F.aggregate(values, F.lit(0.0), lambda acc, v: acc + v)


def _euclidean_distance(x: Any, c: Any) -> Any:
    return F.sqrt(_sum(F.zip_with(x, c, lambda a, b: (a - b) * (a - b))))


def _cosine_distance(x: Any, c: Any) -> Any:
    """1 - cos(x, c), Spark's cosine distance (0 for a zero vector's undefined angle)."""
    dot = _sum(F.zip_with(x, c, lambda a, b: a * b))
    norms = F.sqrt(_sum(F.transform(x, lambda a: a * a))) * F.sqrt(
        _sum(F.transform(c, lambda a: a * a)))
    return F.when(norms > 0, F.lit(1.0) - dot / norms).otherwise(F.lit(0.0))


def run(spark: SparkSession, config: ClusterConfig) -> dict[str, Any]:
    """Cluster ``RUN/pca``; returns what ``clusters.json`` holds."""
    timer = StageTimer()
    run_dir = RunDir(config.run)
    read_finished_run(spark, run_dir)
    data = (spark.read.parquet(run_dir.pca)
            .withColumn("_x", array_to_vector("pca_features")).cache())
    try:
        n = data.count()
        ks = config.candidates(n)
        measure = DISTANCES[config.distance]
        evaluator = ClusteringEvaluator(featuresCol="_x", predictionCol="cluster",
                                        metricName="silhouette",
                                        distanceMeasure="cosine" if measure == "cosine"
                                        else "squaredEuclidean")
        models, scores, spread = {}, {}, {}
        with timer.stage("fit"):
            for k in ks:
                fits = [KMeans(k=k, seed=config.seed + r, maxIter=config.max_iter,
                               distanceMeasure=measure, featuresCol="_x",
                               predictionCol="cluster").fit(data)
                        for r in range(config.restarts)]
                models[k] = min(fits, key=lambda m: m.summary.trainingCost)
                spread[k] = [evaluator.evaluate(m.transform(data)) for m in fits]
                scores[k] = spread[k][fits.index(models[k])]
                logger.info("k=%d: silhouette %.4f (restarts: mean %.4f, sd %.4f)", k,
                            scores[k], np.mean(spread[k]), np.std(spread[k]))
        k = choose_k(spread)
        centers = [c.tolist() for c in models[k].clusterCenters()]
        with timer.stage("write"):
            assigned = models[k].transform(data).withColumn(
                "cluster", F.col("cluster").cast("int"))
            centre = F.element_at(F.array(*[F.array(*map(F.lit, c)) for c in centers]),
                                  F.col("cluster") + 1)
            x = F.col("pca_features").cast("array<double>")
            distance = (_cosine_distance(x, centre) if measure == "cosine"
                        else _euclidean_distance(x, centre))
            (assigned.select("path", "label", "cluster", distance.alias("distance"))
             .write.mode("overwrite").parquet(run_dir.clusters))
        # one pass over the written assignment: (label, cluster) counts, null label too
        everything = (spark.read.parquet(run_dir.clusters)
                      .groupBy("label", "cluster").count().collect())
    finally:
        data.unpersist()
    counts = [r for r in everything if r["label"] is not None]
    sizes = [sum(r["count"] for r in everything if r["cluster"] == i) for i in range(k)]
    summary: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "job": "cluster_features", "clustered_at": utc_now(),
        "run": config.run, "config": asdict(config), "images": n, "k": k,
        "k_chosen_by": "given" if config.k is not None else "silhouette",
        "k_rule": (None if config.k is not None
                   else "one standard deviation" if config.restarts > 1 else "best"),
        "candidates": [{"k": c, "silhouette": scores[c],
                        "silhouette_mean": float(np.mean(spread[c])),
                        "silhouette_sd": float(np.std(spread[c])),
                        "silhouettes": spread[c]} for c in ks],
        "silhouette": scores[k], "cluster_sizes": sizes,
        "labelled_images": sum(r["count"] for r in counts),
        "adjusted_rand_index": None, "purity": None,
    }
    if counts:
        labels = sorted({r["label"] for r in counts})
        table = np.zeros((len(labels), k), dtype=np.int64)
        for r in counts:
            table[labels.index(r["label"]), r["cluster"]] = r["count"]
        summary["adjusted_rand_index"] = adjusted_rand_index(table)
        summary["purity"] = purity(table)
    summary["timings_seconds"] = {**timer.seconds, "total": timer.total()}
    filesystem.write_text(spark, run_dir.clusters_summary, json.dumps(summary, indent=2) + "\n")
    logger.info("k=%d (silhouette %.4f)%s", k, scores[k],
                f"; ARI {summary['adjusted_rand_index']:.3f}, purity {summary['purity']:.3f}"
                if counts else "")
    return summary
