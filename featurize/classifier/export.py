"""The trained chain as one small NumPy file: answers for one photo without Spark.

``train`` writes ``RUN/models/classifier.npz`` beside the Spark ML models: the
StandardScaler (mean, std), the PCA components, the regression's coefficients and
intercepts, the label names, the calibration temperature, and what identifies the models
and features it belongs to (the PCA model id of ``metrics.json``, the weights' sha256,
the preprocessing name).

:meth:`ExportedClassifier.probabilities` computes what the Spark chain computes, in the
same order: ``(x - mean) * (1 / std)`` (0 where std is 0, as Spark's scaler), the PCA
projection, rounded to float32 (``pca_features`` is ``array<float>``), then
``coef · z + intercept`` and ``softmax(logits / T)``. It is kept as two matrices, not one
composed ``W · x + b``: composing would skip the float32 rounding the Spark chain does,
and differ from it by more than the 1e-6 the export is held to.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Bumped when the arrays or their meaning change; :func:`from_bytes` refuses others.
FORMAT_VERSION = 1
_ARRAYS = ("mean", "std", "components", "coef", "intercept")


def fingerprint(mean: np.ndarray, std: np.ndarray, components: np.ndarray) -> str:
    """The PCA model id: sha256 of the scaler's mean and std and the components, as
    :func:`featurize.reduce.pca.model_fingerprint` computes it from the Spark model."""
    h = hashlib.sha256()
    for arr in (mean, std, components):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class ExportedClassifier:
    """StandardScaler → PCA → multinomial logistic regression → softmax(· / T)."""

    mean: np.ndarray
    std: np.ndarray
    #: ``float64[1280, k]``, a column per component (Spark's ``PCAModel.pc``).
    components: np.ndarray
    #: ``float64[n_labels, k]`` and ``float64[n_labels]``.
    coef: np.ndarray
    intercept: np.ndarray
    labels: tuple[str, ...]
    temperature: float
    pca_model_id: str
    weights_sha256: str | None
    preprocessing: str | None

    @classmethod
    def from_models(cls, pca_model: Any, classifier: Any, temperature: float,
                    weights_sha256: str | None, preprocessing: str | None) -> ExportedClassifier:
        """From the run's Spark ML models: ``models/pca`` (StandardScalerModel, PCAModel)
        and ``models/classifier`` (StringIndexerModel, LogisticRegressionModel, ...)."""
        scaler, pca = pca_model.stages
        indexer, regression = classifier.stages[0], classifier.stages[1]
        mean, std = scaler.mean.toArray(), scaler.std.toArray()
        components = pca.pc.toArray()
        return cls(mean=mean, std=std, components=components,
                   coef=regression.coefficientMatrix.toArray(),
                   intercept=regression.interceptVector.toArray(),
                   labels=tuple(indexer.labels), temperature=float(temperature),
                   pca_model_id=fingerprint(mean, std, components),
                   weights_sha256=weights_sha256, preprocessing=preprocessing)

    def pca_features(self, features: np.ndarray) -> np.ndarray:
        """``float32[n, 1280]`` CNN features → ``float32[n, k]``, as the featurize job's
        ``pca_features``."""
        x = np.asarray(features, dtype=np.float64)
        scale = np.divide(1.0, self.std, out=np.zeros_like(self.std), where=self.std != 0)
        return ((x - self.mean) * scale @ self.components).astype(np.float32)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """The regression's ``rawPrediction`` for CNN features, ``float64[n, n_labels]``."""
        z = self.pca_features(features).astype(np.float64)
        return z @ self.coef.T + self.intercept

    def probabilities(self, features: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """``softmax(logits / T)`` per image, T the run's unless given (1: uncalibrated)."""
        t = self.temperature if temperature is None else float(temperature)
        z = self.logits(features) / t
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def to_bytes(self) -> bytes:
        """The ``.npz`` (no pickled objects: it loads with ``allow_pickle=False``)."""
        buf = io.BytesIO()
        np.savez(buf, format_version=np.int64(FORMAT_VERSION),
                 **{name: getattr(self, name) for name in _ARRAYS},
                 labels=np.array(self.labels, dtype=str),
                 temperature=np.float64(self.temperature),
                 pca_model_id=np.array(self.pca_model_id),
                 weights_sha256=np.array(self.weights_sha256 or ""),
                 preprocessing=np.array(self.preprocessing or ""))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ExportedClassifier:
        """Read a ``.npz`` written by :meth:`to_bytes`.

        Raises
        ------
        ValueError
            Another format version, or arrays whose numbers do not give the PCA model
            id they claim (a damaged or edited file).
        """
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            version = int(z["format_version"])
            if version != FORMAT_VERSION:
                raise ValueError(f"classifier.npz format {version}; this code reads "
                                 f"{FORMAT_VERSION}: retrain (make train RUN=<run>)")
            out = cls(**{name: z[name] for name in _ARRAYS},
                      labels=tuple(str(x) for x in z["labels"]),
                      temperature=float(z["temperature"]),
                      pca_model_id=str(z["pca_model_id"]),
                      weights_sha256=str(z["weights_sha256"]) or None,
                      preprocessing=str(z["preprocessing"]) or None)
        if fingerprint(out.mean, out.std, out.components) != out.pca_model_id:
            raise ValueError("classifier.npz: its arrays do not match its pca_model_id "
                             "(damaged or edited); retrain (make train RUN=<run>)")
        return out
