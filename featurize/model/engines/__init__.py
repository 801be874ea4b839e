"""The inference engines: the driver prepares one, every Python worker runs it.

Keras is the definition of the model and of its weights (:mod:`featurize.model.backbone`). An
engine is how the workers run that definition:

``openvino`` (the default where the package imports)
    The driver converts the Keras model with its weights to OpenVINO IR once
    (:mod:`featurize.model.engines.openvino_engine`, cached by the weights' checksum and the
    input size) and broadcasts the IR bytes; each Python worker compiles them once and
    never imports TensorFlow. f32 by default; ``bf16`` is opt-in (AMX/AVX-512 BF16).
``tensorflow``
    The driver broadcasts the weight arrays; each worker builds the Keras model and
    traces a ``tf.function`` (:mod:`featurize.model.engines.tensorflow_engine`). f32 only.

:func:`prepare_engine` is the driver's half; :mod:`featurize.model.engines.worker` the
workers'. A run's manifest records the engine, its version, the precision and (for
openvino) the IR's sha256; ``--resume`` and predict refuse to mix engines.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from typing import Any

from featurize.config import check_engine
from featurize.errors import ConfigError


@dataclass(frozen=True)
class WorkerSpec:
    """What a Python worker needs to build its extractor, besides the broadcast payload
    (small: it travels in the UDF's closure).

    Attributes
    ----------
    engine, precision : str
    batch_size : int
        The compiled batch; shorter inputs are zero-padded to it.
    threads : int
        Inference threads per task (the cores a task owns).
    size : int
        Input height and width.
    key : str
        Identifies the payload; a worker holding another key rebuilds.
    """

    engine: str
    precision: str
    batch_size: int
    threads: int
    size: int
    key: str = ""

    @property
    def shape(self) -> tuple[str, str, int, int, int]:
        """Everything but the payload: a worker's extractor is reused while it matches."""
        return (self.engine, self.precision, self.batch_size, self.threads, self.size)


@dataclass
class PreparedEngine:
    """The driver's half of an engine: what to broadcast and what to record.

    Attributes
    ----------
    name, precision, version : str
    key : str
        Identifies the payload (workers rebuild when it changes).
    payload : Any
        Broadcast once: the IR as ``(xml bytes, bin bytes)`` for openvino, the weight
        arrays for tensorflow.
    ir_sha256 : str or None
        sha256 of the IR (xml then bin), openvino only.
    cache : str or None
        ``hit`` or ``converted`` (openvino), and where the IR is cached.
    """

    name: str
    precision: str
    version: str
    key: str
    payload: Any = field(repr=False)
    ir_sha256: str | None = None
    cache: dict[str, str] | None = None

    def worker_spec(self, batch_size: int, threads: int, size: int) -> WorkerSpec:
        return WorkerSpec(self.name, self.precision, batch_size, threads, size, self.key)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's ``engine`` section."""
        return {"name": self.name, "version": self.version, "precision": self.precision,
                "ir_sha256": self.ir_sha256, "ir_cache": self.cache}


def prepare_engine(engine: str, precision: str, weights: Any, size: int) -> PreparedEngine:
    """Prepare ``engine`` on the driver for these weights (a
    :class:`~featurize.model.weights.ResolvedWeights`) at this input size."""
    check_engine(engine, precision)
    if engine == "openvino":
        from featurize.model.engines import openvino_engine

        ir = openvino_engine.cached_ir(weights, size)
        return PreparedEngine("openvino", precision, ir.version,
                              key=f"{ir.sha256}:{precision}", payload=(ir.xml, ir.bin),
                              ir_sha256=ir.sha256, cache={"status": ir.status,
                                                         "path": ir.folder})
    return PreparedEngine("tensorflow", precision, importlib.metadata.version("tensorflow-cpu")
                          if _installed("tensorflow-cpu") else
                          importlib.metadata.version("tensorflow"),
                          key=weights.digest, payload=weights.arrays)


def prepare_for(config: Any) -> tuple[Any, PreparedEngine]:
    """Resolve a :class:`~featurize.config.FeaturizeConfig`'s weights and prepare its
    engine: ``(ResolvedWeights, PreparedEngine)``."""
    from featurize.model.weights import resolve_weights

    weights = resolve_weights(config.weights, seed=config.seed)
    return weights, prepare_engine(config.engine, config.precision, weights,
                                   config.image_size)


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def check_same_engine(recorded: dict[str, Any] | None, engine: str, precision: str,
                      what: str) -> None:
    """Refuse to mix features from another engine or precision with this run's.

    ``recorded`` is a manifest's ``engine`` section; a run from before engines were
    recorded ran TensorFlow at f32.

    Raises
    ------
    ConfigError
    """
    recorded = recorded or {"name": "tensorflow", "precision": "f32"}
    theirs = (recorded.get("name"), recorded.get("precision"))
    if theirs != (engine, precision):
        raise ConfigError(
            f"{what} was featurized with --engine {theirs[0]} --precision {theirs[1]}, this "
            f"run would use --engine {engine} --precision {precision}; features from both "
            f"must not be mixed. Pass --engine {theirs[0]} --precision {theirs[1]}, or "
            f"re-featurize (--overwrite) and retrain.")
