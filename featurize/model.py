"""The model factory and the per-Python-worker model cache.

The cache lives in this importable module on purpose: a dict defined in a job script
lives in ``__main__``, which cloudpickle ships *by value* with every task, so each task
would get a fresh, empty cache and rebuild the model. Module globals here survive
across tasks because Spark reuses Python workers (``spark.python.worker.reuse``).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from featurize.images import DEFAULT_IMAGE_SIZE

logger = logging.getLogger(__name__)

#: Length of a feature vector (MobileNetV2 alpha 1.0, no top, global average pooling).
FEATURE_DIM = 1280
DEFAULT_SIZE = DEFAULT_IMAGE_SIZE


def model_name(size: int = DEFAULT_SIZE) -> str:
    """The model as the manifest records it (the input size is part of it)."""
    return (f"MobileNetV2(alpha=1.0, include_top=False, pooling='avg', "
            f"input {size}x{size}x3)")


_CACHE: dict[Hashable, "FeatureExtractor"] = {}
_LOCK = threading.Lock()
#: How many models this process has built (logged, to show reuse across tasks).
BUILD_COUNT = 0


def build_backbone(weights: str | None = None, size: int = DEFAULT_SIZE) -> Any:
    """Build MobileNetV2 as a Keras model: ``float32[n,size,size,3]`` → ``float32[n,1280]``.

    Parameters
    ----------
    weights : str or None
        Passed to ``keras.applications.MobileNetV2`` (None builds it uninitialised
        apart from Keras' own seeded initialisers).
    size : int
        Input height and width. The convolutional weights do not depend on it, so the
        224 ImageNet weights serve any size (Keras warns for sizes other than its
        published ones when it downloads; the job resolves weights at 224).
    """
    from keras.applications import MobileNetV2

    return MobileNetV2(
        input_shape=(size, size, 3), include_top=False, pooling="avg", weights=weights
    )


def configure_tensorflow_threads(threads: int) -> None:
    """Cap TensorFlow's thread pools to the cores a task owns.

    Must run before TensorFlow executes anything in this process; later calls (same
    worker, new job) cannot change the pools and are logged.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1 if threads <= 2 else 2)
    except RuntimeError as exc:
        logger.debug("TensorFlow thread pools already initialised: %s", exc)


class FeatureExtractor:
    """MobileNetV2 behind a compiled function with a fixed batch shape.

    Parameters
    ----------
    batch_size : int
        The compiled batch; shorter inputs are zero-padded to it (one trace, no
        retracing on the last batch of a partition).
    threads : int
        TensorFlow intra-op threads.
    arrays : list of numpy.ndarray, optional
        Weights in ``get_weights()`` order; see :meth:`load`.
    size : int
        Input height and width.
    """

    def __init__(self, batch_size: int, threads: int,
                 arrays: list[np.ndarray] | None = None, size: int = DEFAULT_SIZE) -> None:
        global BUILD_COUNT
        configure_tensorflow_threads(threads)
        import tensorflow as tf

        self.batch_size = batch_size
        self.threads = threads
        self.size = size
        self.shape = (size, size, 3)
        self.weights_key: Hashable | None = None
        self.model = build_backbone(weights=None, size=size)
        model = self.model
        # tf.function without XLA: as fast as model.predict, without predict's
        # per-call setup; jit_compile=True is ~13x slower on CPU (see DESIGN.md).
        self._fn = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec((batch_size, *self.shape), tf.float32)],
        )
        # Trace now, so the first real batch does not pay for it.
        self._fn(np.zeros((batch_size, *self.shape), dtype=np.float32))
        BUILD_COUNT += 1
        if arrays is not None:
            self.load(arrays, key=None)

    def load(self, arrays: list[np.ndarray], key: Hashable | None) -> None:
        """Assign weights (the traced function reads the same variables)."""
        self.model.set_weights(arrays)
        self.weights_key = key

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features for ``images`` (``float32[n,size,size,3]``), any ``n >= 0``."""
        n = len(images)
        out = np.empty((n, FEATURE_DIM), dtype=np.float32)
        bs = self.batch_size
        for start in range(0, n, bs):
            chunk = images[start:start + bs]
            m = len(chunk)
            if m < bs:
                padded = np.zeros((bs, *self.shape), dtype=np.float32)
                padded[:m] = chunk
                chunk = padded
            out[start:start + m] = self._fn(chunk).numpy()[:m]
        return out


def _extractor_for(batch_size: int, threads: int, size: int) -> FeatureExtractor:
    """The process's extractor for this shape, built (without weights) if needed."""
    extractor = _CACHE.get("extractor")
    if extractor is None or (extractor.batch_size, extractor.threads, extractor.size) != (
            batch_size, threads, size):
        _CACHE.clear()
        extractor = FeatureExtractor(batch_size, threads, size=size)
        _CACHE["extractor"] = extractor
        logger.info("built MobileNetV2 in this worker (builds so far: %d)", BUILD_COUNT)
    return extractor


def warm_up(batch_size: int, threads: int, size: int = DEFAULT_SIZE) -> None:
    """Import TensorFlow, build and trace the model in this worker, without weights.

    The featurize job runs this as a small Spark job while the driver resolves the
    weights and lists the inputs, so the Python workers the UDF then reuses are ready.
    """
    with _LOCK:
        _extractor_for(batch_size, threads, size)


def get_extractor(
    key: Hashable,
    load_arrays: Callable[[], list[np.ndarray]],
    batch_size: int,
    threads: int,
    size: int = DEFAULT_SIZE,
) -> FeatureExtractor:
    """The worker's extractor with the weights identified by ``key``.

    Built on first use (or taken from :func:`warm_up`) and then reused across tasks and
    batches. A different ``key`` (the job passes the weights digest) reloads the
    weights, so a long-lived worker never serves stale ones or holds two models.
    """
    with _LOCK:
        extractor = _extractor_for(batch_size, threads, size)
        if extractor.weights_key != key:
            extractor.load(load_arrays(), key)
        return extractor
