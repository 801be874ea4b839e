"""The openvino engine: the Keras model converted to OpenVINO IR once, compiled once per
Python worker from the broadcast bytes.

Driver side, :func:`cached_ir`: build the Keras MobileNetV2 with the resolved weights
(:func:`featurize.model.backbone.build_backbone`, the one definition), ``openvino.convert_model``
it in memory and save it uncompressed (``compress_to_fp16=False``: f32 weights, so
features match Keras to ~1e-5), into a cache folder keyed by the weights' identity (the
file's sha256, or the seed for random weights), the input size and the OpenVINO
version. The next run with the same weights reads the IR and its recorded
``arrays_sha256`` from there and never imports TensorFlow.

The preprocessing is not part of the key: it runs before the model, in NumPy
(:func:`featurize.model.preprocess.preprocess_image`), so the IR does not depend on it; the input
size, which the IR does depend on, is in the key.

Worker side, :class:`OpenVinoExtractor`: ``read_model`` from the bytes, reshaped to the
fixed batch, compiled for the CPU with one stream of ``threads`` threads and
``ENABLE_CPU_PINNING`` off. Pinning on, the workers of one executor each pin their
thread and several landed on the same core (measured: 89 images/s against 142 with it
off on 2 cores).

No telemetry: OpenVINO's converter sends usage events to Google Analytics unless a consent
file in the user's home says no (the ``openvino-telemetry`` package, a dependency of
``openvino``), and it forks the whole Python process for each event: 22 forks of the
driver per conversion, measured, each one counted at the driver's size by YARN's
physical-memory check, and each one trying to reach the internet from a cluster node.
This module keeps that package from importing (a ``None`` entry in ``sys.modules``), so
the converter takes its own no-op stub (``openvino/tools/ovc/telemetry_stub.py``); every
``import openvino`` of the project is in this module, after that line.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featurize.cache import cache_root
from featurize.model.engines.batches import in_fixed_batches

logger = logging.getLogger(__name__)

# before any ``import openvino``: see the module's docstring, "No telemetry"
sys.modules.setdefault("openvino_telemetry", None)

#: Bumped when the conversion itself changes, so old cache entries are not reused.
CONVERSION = "keras-convert_model-f32-v1"


def openvino_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("openvino")


@dataclass(frozen=True)
class CachedIR:
    """An IR ready to broadcast: ``xml`` and ``bin`` bytes, their sha256, and whether it
    was converted now (``converted``) or read from the cache (``hit``)."""

    xml: bytes
    bin: bytes
    sha256: str
    version: str
    status: str
    folder: str


def ir_sha256(xml: bytes, weights_bin: bytes) -> str:
    h = hashlib.sha256()
    h.update(xml)
    h.update(weights_bin)
    return h.hexdigest()


def cache_key(identity: str, size: int, version: str) -> str:
    text = f"{identity}|input {size}|openvino {version}|{CONVERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def convert(weights: Any, size: int, dest: Path) -> None:
    """Convert the Keras backbone with ``weights`` to ``dest/model.xml`` + ``model.bin``."""
    import openvino as ov

    from featurize.model.backbone import build_backbone

    model = build_backbone(weights=None, size=size)
    model.set_weights(weights.arrays)
    with warnings.catch_warnings():
        # Keras warns that convert_model's tracing call passes the input as a tuple.
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        ov_model = ov.convert_model(model, input=[(-1, size, size, 3)])
    ov.save_model(ov_model, str(dest / "model.xml"), compress_to_fp16=False)


def cached_ir(weights: Any, size: int) -> CachedIR:
    """The IR of these weights at this size: from the cache, or converted and cached.

    A cache entry whose bytes no longer match its recorded sha256 is converted again
    (and replaced), never used.
    """
    version = openvino_version()
    folder = cache_root() / "ir" / cache_key(weights.identity, size, version)
    meta_file = folder / "meta.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        xml, bin_ = (folder / "model.xml").read_bytes(), (folder / "model.bin").read_bytes()
        if ir_sha256(xml, bin_) == meta["ir_sha256"] and meta["identity"] == weights.identity:
            weights.know_digest(meta["arrays_sha256"])
            logger.info("openvino IR from the cache %s", folder)
            return CachedIR(xml, bin_, meta["ir_sha256"], version, "hit", str(folder))
        logger.warning("openvino IR cache %s does not match its record; converting again",
                       folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    except OSError as exc:
        # e.g. a YARN container whose HOME is not writable: convert, just do not keep it
        logger.warning("openvino IR cache %s is not writable (%s); set FEATURIZE_CACHE to "
                       "keep the IR between runs", folder.parent, exc)
        base = Path(tempfile.mkdtemp(prefix="featurize-ir-"))
        folder = base / folder.name
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=base))
    try:
        convert(weights, size, tmp)
        xml, bin_ = (tmp / "model.xml").read_bytes(), (tmp / "model.bin").read_bytes()
        digest = ir_sha256(xml, bin_)
        (tmp / "meta.json").write_text(json.dumps({
            "identity": weights.identity, "arrays_sha256": weights.digest, "input_size": size,
            "openvino": version, "conversion": CONVERSION, "ir_sha256": digest}, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        try:
            tmp.rename(folder)  # atomic: another run sees the whole entry or none
        except OSError:  # a concurrent run cached it first; theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("openvino IR converted from the Keras model and cached in %s", folder)
    return CachedIR(xml, bin_, digest, version, "converted", str(folder))


class OpenVinoExtractor:
    """The IR compiled for this process's CPU: ``float32[n,size,size,3]`` →
    ``float32[n,1280]``, any ``n >= 0``, through one infer request at a fixed batch.

    Parameters
    ----------
    batch_size, threads, size : int
    precision : str
        ``f32`` or ``bf16`` (the CPU plugin's inference precision hint).
    """

    def __init__(self, batch_size: int, threads: int, size: int, precision: str) -> None:
        import openvino as ov

        self.batch_size, self.threads, self.size, self.precision = (
            batch_size, threads, size, precision)
        self.core = ov.Core()
        self.key: str | None = None
        self._request: Any = None

    def load(self, payload: tuple[bytes, bytes], key: str) -> None:
        """Compile the IR ``(xml, bin)`` (replacing any other)."""
        import openvino as ov

        xml, bin_ = payload
        model = self.core.read_model(model=xml,
                                     weights=ov.Tensor(np.frombuffer(bin_, np.uint8)))
        model.reshape([self.batch_size, self.size, self.size, 3])
        compiled = self.core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": self.threads,
            "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": False,
            "INFERENCE_PRECISION_HINT": self.precision,
        })
        self._request = compiled.create_infer_request()
        self.key = key

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return in_fixed_batches(images, self.batch_size, self._infer)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        self._request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        return self._request.get_output_tensor(0).data
