"""The per-Python-worker extractor cache: one model per worker, built once, reused by
every task and batch.

The cache lives in this importable module on purpose: a dict defined in a job script
lives in ``__main__``, which cloudpickle ships *by value* with every task, so each task
would get a fresh, empty cache and rebuild the model. Module globals here survive
across tasks because Spark reuses Python workers (``spark.python.worker.reuse``).
Nothing here imports TensorFlow unless the tensorflow engine asks for it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from featurize.model.engines import WorkerSpec

logger = logging.getLogger(__name__)

_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()
#: How many extractors this process has built (logged, to show reuse across tasks).
BUILD_COUNT = 0


def _new_extractor(spec: WorkerSpec) -> Any:
    if spec.engine == "openvino":
        from featurize.model.engines.openvino_engine import OpenVinoExtractor

        return OpenVinoExtractor(spec.batch_size, spec.threads, spec.size, spec.precision)
    from featurize.model.engines.tensorflow_engine import TensorFlowExtractor

    return TensorFlowExtractor(spec.batch_size, spec.threads, spec.size)


def _extractor_for(spec: WorkerSpec) -> Any:
    """The process's extractor for this spec's shape, built (without a payload) if needed."""
    global BUILD_COUNT
    held = _CACHE.get("extractor")
    if held is None or _CACHE.get("shape") != spec.shape:
        _CACHE.clear()
        held = _new_extractor(spec)
        BUILD_COUNT += 1
        _CACHE.update(extractor=held, shape=spec.shape)
        logger.info("built the %s extractor in this worker (builds so far: %d)",
                    spec.engine, BUILD_COUNT)
    return held


def warm_up(spec: WorkerSpec) -> None:
    """Start the engine in this worker before the payload exists: tensorflow imports,
    builds and traces the model; openvino imports and creates its ``Core`` (compiling
    needs the IR, and takes ~0.5 s)."""
    with _LOCK:
        _extractor_for(spec)


def get_extractor(spec: WorkerSpec, load_payload: Callable[[], Any]) -> Any:
    """The worker's extractor holding the payload identified by ``spec.key``.

    Built on first use (or taken from :func:`warm_up`) and then reused. A different key
    (other weights or IR) loads the new payload, so a long-lived worker never serves
    stale weights or holds two models.
    """
    with _LOCK:
        extractor = _extractor_for(spec)
        if extractor.key != spec.key:
            extractor.load(load_payload(), spec.key)
        return extractor
