"""Classifier stage: fit a multinomial logistic regression on PCA features, score.

Transforms take and return DataFrames; :func:`evaluate` returns plain numbers (one small
``groupBy`` per split: the confusion matrix is computed in Spark, never by collecting
predictions). :func:`cross_validate` chooses the regularisation with Spark ML's
``CrossValidator`` and hands back the out-of-fold logits the temperature is fitted on
(:mod:`featurize.classifier.calibration`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import IndexToString, StringIndexer, StringIndexerModel
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.tuning import CrossValidator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from featurize.classifier.split import FOLD as _FOLD
from featurize.classifier.split import with_folds
from featurize.errors import ClassifierError

logger = logging.getLogger(__name__)

_X = "_x"
_Y = "_label_index"

#: ``--reg-param auto`` tries these (log-spaced, from the old fixed default, which
#: reached 1.000 on Fruits-360, to strong).
REG_GRID = (1e-3, 1e-2, 1e-1, 1.0)
#: Folds of the cross-validation on the training split.
CV_FOLDS = 3
#: At most this many rows of logits come to the driver to fit or score a temperature
#: (a sample beyond it): one scalar is well determined by far fewer.
MAX_LOGIT_ROWS = 200_000


@dataclass(frozen=True)
class ClassifierParams:
    """Spark ML LogisticRegression settings exposed as flags.

    ``standardization`` is off by default: the inputs are PCA components of
    standardised features, whose variances are the eigenvalues; rescaling every
    component to unit variance blows the noise components up to the size of the signal
    ones. Measured on the embedded sample (120 test images): 0.83 accuracy with
    standardization, 0.95 without (scikit-learn's LogisticRegression: 0.96).
    """

    #: ``None``: chosen by :func:`cross_validate` over :data:`REG_GRID`.
    reg_param: float | None = None
    elastic_net_param: float = 0.0
    max_iter: int = 200
    standardization: bool = False
    #: L-BFGS stops when the loss changes by less than this share. Spark's default
    #: (1e-6) took 65 iterations on the embedded sample, 1e-4 took 34 (each a Spark job,
    #: ~60 ms here), for a mean log-loss 0.001 apart; cross-validation makes 13 fits.
    tol: float = 1e-4


def labelled_only(pca: DataFrame) -> DataFrame:
    """Rows with a label (files directly under the input root have none)."""
    return pca.where(F.col("label").isNotNull())


def with_vectors(df: DataFrame) -> DataFrame:
    return df.withColumn(_X, array_to_vector("pca_features"))


def _index_labels(train: DataFrame) -> tuple[StringIndexerModel, DataFrame]:
    # handleInvalid="error": "keep" would add an unseen-label class to the label
    # metadata, and with it a spurious class to the regression's probability vector.
    indexer = StringIndexer(inputCol="label", outputCol=_Y, stringOrderType="alphabetAsc",
                            handleInvalid="error").fit(train)
    return indexer, indexer.transform(with_vectors(train))


def _regression(params: ClassifierParams, reg_param: float) -> LogisticRegression:
    return LogisticRegression(featuresCol=_X, labelCol=_Y, family="multinomial",
                              regParam=reg_param, elasticNetParam=params.elastic_net_param,
                              maxIter=params.max_iter, standardization=params.standardization,
                              tol=params.tol)


def _assemble(indexer: StringIndexerModel, lr: LogisticRegressionModel) -> PipelineModel:
    # The PipelineModel carries the label indexer, so it maps predictions back to label
    # names by itself; :func:`predict` applies it to unlabelled rows.
    to_label = IndexToString(inputCol="prediction", outputCol="predicted_label",
                             labels=indexer.labels)
    return PipelineModel(stages=[indexer, lr, to_label])


def fit_classifier(train: DataFrame, params: ClassifierParams) -> PipelineModel:
    """StringIndexer(label) → multinomial LogisticRegression → IndexToString, one fit at
    ``params.reg_param`` (no cross-validation, no held-out logits)."""
    if params.reg_param is None:
        raise ValueError("fit_classifier needs a reg_param; use cross_validate to choose one")
    indexer, data = _index_labels(train)
    return _assemble(indexer, _regression(params, params.reg_param).fit(data))


@dataclass
class CrossValidation:
    """What :func:`cross_validate` found: the model refitted on the whole training split
    at the chosen ``reg_param``, the mean validation log-loss per grid value, and the
    out-of-fold logits (each row scored by the model that did not see it) with their
    label indices."""

    model: PipelineModel
    reg_param: float
    scores: dict[float, float]
    oof_logits: np.ndarray
    oof_labels: np.ndarray


def grouped_folds(data: DataFrame, groups: DataFrame) -> DataFrame:
    """``data``'s folds with each near-duplicate group (``path, root``) moved to its first
    member's fold, so no fold is validated on the shot it was fitted on; images in no
    group keep theirs."""
    root_fold = data.select(F.col("path").alias("root"), F.col(_FOLD).alias("_root_fold"))
    return (data.join(groups, "path", "left").join(root_fold, "root", "left")
            .withColumn(_FOLD, F.coalesce("_root_fold", _FOLD)).drop("root", "_root_fold"))


def cross_validate(train: DataFrame, params: ClassifierParams, grid: tuple[float, ...], *,
                   folds: int = CV_FOLDS, seed: int = 0,
                   groups: DataFrame | None = None) -> CrossValidation:
    """Choose ``regParam`` from ``grid`` by ``folds``-fold cross-validation (Spark ML's
    ``CrossValidator``, mean multinomial log-loss: a proper score, so the choice is the
    one whose probabilities are best, not only its argmax). With ``groups`` (``path,
    root``: :func:`featurize.search.groups.duplicate_roots`) each near-duplicate group is
    kept in one fold.

    One grid value still runs the folds: that gives the out-of-fold logits the
    temperature is fitted on. The grid's fits run concurrently (``parallelism`` =
    grid size): each is a distributed job of many small iterations, latency-bound on
    a small training set (measured on the embedded sample, 2 cores, 5 values: 54 s at
    parallelism 2, 34 s at 5) and sharing the executors' task slots on a large one.

    Raises
    ------
    ClassifierError
        Fewer training images than folds.
    """
    indexer, data = _index_labels(train)
    data = with_folds(data, folds, seed)
    if groups is not None:
        data = grouped_folds(data, groups)
    data = data.cache()
    try:
        n = data.count()
        if n < folds:
            raise ClassifierError(
                f"{n} training images cannot be split into {folds} cross-validation folds; "
                f"give --reg-param a number and --no-calibrate, or add images.")
        lr = _regression(params, grid[0])
        cv = CrossValidator(
            estimator=lr, estimatorParamMaps=[{lr.regParam: r} for r in grid],
            evaluator=MulticlassClassificationEvaluator(labelCol=_Y, metricName="logLoss"),
            numFolds=folds, foldCol=_FOLD, parallelism=len(grid), collectSubModels=True)
        fitted = cv.fit(data)
        # CrossValidator's own choice (argmin for a smaller-is-better metric).
        best = int(np.argmin(fitted.avgMetrics))
        logits, labels = [], []
        for fold in range(folds):
            held_out = data.where(F.col(_FOLD) == fold)
            scored = fitted.subModels[fold][best].transform(held_out)
            fold_logits, fold_labels = collect_logits(scored, cap=MAX_LOGIT_ROWS // folds,
                                                      seed=seed)
            logits.append(fold_logits)
            labels.append(fold_labels)
    finally:
        data.unpersist()
    return CrossValidation(
        model=_assemble(indexer, fitted.bestModel), reg_param=grid[best],
        scores={r: float(m) for r, m in zip(grid, fitted.avgMetrics)},
        oof_logits=np.concatenate(logits), oof_labels=np.concatenate(labels))


def collect_logits(scored: DataFrame, *, cap: int = MAX_LOGIT_ROWS,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``rawPrediction`` (the multinomial margins: logits) and the label index of a
    scored frame, as arrays on the driver; a seeded sample of ``cap`` rows beyond it."""
    n = scored.count()
    if n > cap:
        scored = scored.sample(fraction=min(1.0, 1.1 * cap / n), seed=seed).limit(cap)
    rows = scored.select(vector_to_array("rawPrediction").alias("z"),
                         F.col(_Y).cast("int").alias("y")).collect()
    if not rows:
        return np.empty((0, 0)), np.empty(0, dtype=np.int64)
    return (np.array([r["z"] for r in rows], dtype=np.float64),
            np.array([r["y"] for r in rows], dtype=np.int64))


def split_logits(model: PipelineModel, test: DataFrame, *, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Logits and label indices of the labelled rows of ``test`` whose label the model
    knows (an unseen label has no index to score against)."""
    known = test.where(F.col("label").isin(labels_of(model)))
    scored = PipelineModel(stages=model.stages[:2]).transform(with_vectors(known))
    return collect_logits(scored, seed=seed)


def labels_of(model: PipelineModel) -> list[str]:
    return list(model.stages[0].labels)


def predict(model: PipelineModel, pca: DataFrame, temperature: float = 1.0) -> DataFrame:
    """``path, [label], pca_features`` → ``path, predicted_label, confidence, probabilities``.

    Applies the model's classifier stages only (not the label indexer), so unlabelled
    and unseen-label rows are fine. ``probabilities`` is ``map<string,double>``:
    ``softmax(logits / temperature)``, computed in SQL from the regression's
    ``rawPrediction``; ``confidence`` is the largest. A positive temperature keeps the
    order of the logits, so ``predicted_label`` is the same at any temperature.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    labels = labels_of(model)
    scored = PipelineModel(stages=model.stages[1:]).transform(with_vectors(pca))
    z = vector_to_array("rawPrediction")
    top = F.array_max(z)
    # exp((z - max) / T): the largest term is exp(0), so nothing overflows.
    e = F.transform(z, lambda v: F.exp((v - top) / F.lit(float(temperature))))
    total = F.aggregate(e, F.lit(0.0), lambda acc, v: acc + v)
    probs = F.transform(e, lambda v: v / total)
    keep = [c for c in ("path", "label") if c in pca.columns]
    return scored.select(*keep, "predicted_label", probs.alias("_p")).select(
        *keep,
        F.col("predicted_label"),
        F.array_max("_p").alias("confidence"),
        F.map_from_arrays(F.array(*[F.lit(x) for x in labels]), F.col("_p")).alias(
            "probabilities"),
    )


def evaluate(predictions: DataFrame, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix.

    ``confusion_matrix[i][j]`` counts images of ``labels[i]`` predicted as ``labels[j]``.
    """
    counts = {(r["label"], r["predicted_label"]): int(r["count"])
              for r in predictions.groupBy("label", "predicted_label").count().collect()}
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    unknown = 0
    for (true, pred), n in counts.items():
        if true in index and pred in index:
            matrix[index[true]][index[pred]] += n
        else:
            unknown += n  # a label the classifier never saw in training
    total = sum(sum(row) for row in matrix)
    correct = sum(matrix[i][i] for i in range(len(labels)))
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        predicted = sum(matrix[r][i] for r in range(len(labels)))
        support = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1,
                            "support": support}
        if support:
            f1s.append(f1)
    return {
        "accuracy": correct / total if total else 0.0,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "n": total,
        "rows_with_unknown_label": unknown,
        "labels": labels,
        "per_class": per_class,
        "confusion_matrix": matrix,
    }
