"""The tensorflow engine: the Keras model itself behind a traced ``tf.function``.

Each Python worker builds MobileNetV2 without weights, traces it at the fixed batch and
then assigns the broadcast arrays (:meth:`TensorFlowExtractor.load`).
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from featurize.model.engines.batches import in_fixed_batches

logger = logging.getLogger(__name__)


def configure_tensorflow_threads(threads: int) -> None:
    """Cap TensorFlow's thread pools to the cores a task owns.

    Must run before TensorFlow executes anything in this process; later calls (same
    worker, new job) cannot change the pools and are logged.
    """
    # One banner per worker (oneDNN, absl) is noise in the job's log: errors only.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1 if threads <= 2 else 2)
    except RuntimeError as exc:
        logger.debug("TensorFlow thread pools already initialised: %s", exc)


class TensorFlowExtractor:
    """MobileNetV2 behind a compiled function with a fixed batch shape.

    Parameters
    ----------
    batch_size : int
        The compiled batch; shorter inputs are zero-padded to it (one trace, no
        retracing on the last batch of a partition).
    threads : int
        TensorFlow intra-op threads.
    size : int
        Input height and width.
    arrays : list of numpy.ndarray, optional
        Weights in ``get_weights()`` order; see :meth:`load`.
    """

    def __init__(self, batch_size: int, threads: int, size: int,
                 arrays: list[np.ndarray] | None = None) -> None:
        configure_tensorflow_threads(threads)
        import tensorflow as tf

        from featurize.model.backbone import build_backbone

        self.batch_size = batch_size
        self.threads = threads
        self.size = size
        self.shape = (size, size, 3)
        self.key: str | None = None
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
        if arrays is not None:
            self.load(arrays, key="")

    def load(self, payload: Any, key: str) -> None:
        """Assign weights (the traced function reads the same variables)."""
        self.model.set_weights(payload)
        self.key = key

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Features for ``images`` (``float32[n,size,size,3]``), any ``n >= 0``."""
        return in_fixed_batches(images, self.batch_size, lambda b: self._fn(b).numpy())
