"""Weights resolution, on the driver only.

``--weights`` takes ``imagenet`` (Keras' own download-and-cache path, honouring
``KERAS_HOME``), ``random`` (seeded; for tests and smoke runs, always recorded as such)
or a path to a Keras weights file. The driver resolves the spec once: the file located
and checksummed, its arrays loaded through Keras when an engine needs them (the
tensorflow engine broadcasts them; the openvino engine converts them to IR once and
caches the IR by the file's checksum). Executors never download or read a file.
There is no fallback from one source to another.
"""
from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

import numpy as np

from featurize.config import DEFAULT_SEED
from featurize.errors import WeightsError

logger = logging.getLogger(__name__)

#: Where Keras downloads MobileNetV2 weights from (module constant so tests can point
#: it at an address that refuses connections).
IMAGENET_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"

#: The file name Keras uses for the alpha=1.0, 224x224, no-top ImageNet weights.
IMAGENET_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"



class ResolvedWeights:
    """Weights resolved on the driver: where they come from now, their arrays on demand.

    Resolving locates and checksums the file (no TensorFlow). The arrays are loaded
    through Keras the first time :attr:`arrays` or :attr:`digest` is read; the openvino
    engine's IR cache can supply the digest it recorded when it converted these weights
    (:meth:`know_digest`), and then the driver never imports TensorFlow.

    Attributes
    ----------
    spec : str
        What the user asked for (``imagenet``, ``random`` or a path).
    source : str
        ``imagenet``, ``random`` or ``file``.
    path : str or None
        The weights file as recorded (None for random; the ``s3://`` URI for S3).
    sha256 : str or None
        Checksum of that file (None for random).
    seed : int or None
        Seed for random weights (None otherwise).
    """

    def __init__(self, spec: str, source: str, load: Callable[[], list[np.ndarray]], *,
                 path: str | None = None, sha256: str | None = None,
                 seed: int | None = None) -> None:
        self.spec, self.source, self.path, self.sha256, self.seed = (
            spec, source, path, sha256, seed)
        self._load = load
        self._arrays: list[np.ndarray] | None = None
        self._digest: str | None = None

    def __repr__(self) -> str:
        return f"ResolvedWeights({self.spec!r}, {self.source!r}, sha256={self.sha256!r})"

    @property
    def arrays(self) -> list[np.ndarray]:
        """``model.get_weights()`` order for :func:`featurize.model.backbone.build_backbone`."""
        if self._arrays is None:
            self._arrays = self._load()
        return self._arrays

    @property
    def identity(self) -> str:
        """Names these weights without loading them: the file's sha256, or the seed and
        the Keras version for random ones (its initialisers make the arrays)."""
        if self.source == "random":
            return f"random:{self.seed}:keras {importlib.metadata.version('keras')}"
        return f"sha256:{self.sha256}"

    @property
    def digest(self) -> str:
        """sha256 over the arrays themselves: identifies the weights whatever the source."""
        if self._digest is None:
            h = hashlib.sha256()
            for arr in self.arrays:
                h.update(str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
            self._digest = h.hexdigest()
        return self._digest

    def know_digest(self, digest: str) -> None:
        """Take :attr:`digest` from a record made when these same weights (same
        :attr:`identity`) were last loaded, instead of loading them again."""
        if self._digest is None:
            self._digest = digest

    def to_manifest(self) -> dict[str, Any]:
        """The ``weights`` section of a run's manifest."""
        return {
            "spec": self.spec,
            "source": self.source,
            "path": self.path,
            "sha256": self.sha256 if self.source != "random" else "random",
            "seed": self.seed,
            "arrays_sha256": self.digest,
        }


def sha256_file(path: str) -> str:
    """Hex sha256 of a local file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def keras_cache_dir() -> str:
    """The Keras cache folder, read at call time: ``$KERAS_HOME`` or ``~/.keras``."""
    home = os.environ.get("KERAS_HOME")
    if home:
        return home
    return os.path.join(os.path.expanduser("~"), ".keras")


def imagenet_weights_file() -> str:
    """Path of the cached ImageNet weights, downloading them through Keras if absent.

    Uses ``keras.utils.get_file`` with the same file name, URL and cache sub-folder as
    ``keras.applications.MobileNetV2(weights="imagenet")``, so it fills and reuses the
    same cache.

    Raises
    ------
    WeightsError
        When the file is not cached and cannot be downloaded.
    """
    cache_dir = keras_cache_dir()
    cached = os.path.join(cache_dir, "models", IMAGENET_FILE)
    if os.path.isfile(cached):
        return cached
    import keras

    logger.info("ImageNet weights not in %s; downloading them once through Keras", cached)
    try:
        return keras.utils.get_file(
            IMAGENET_FILE, IMAGENET_BASE_URL + IMAGENET_FILE, cache_subdir="models",
            cache_dir=cache_dir,
        )
    # keras.utils.get_file wraps every network failure in a bare Exception
    # ("URL fetch failure on ..."), so nothing narrower can be caught here.
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(
            f"MobileNetV2 ImageNet weights are not cached at {cached} and could not be "
            f"downloaded ({exc}). Either go online once so Keras can cache them, set "
            f"KERAS_HOME to a folder that holds models/{IMAGENET_FILE}, or pass "
            f"--weights PATH with a Keras weights file."
        ) from exc


def random_arrays(seed: int) -> list[np.ndarray]:
    """Seeded random (Keras-initialised) MobileNetV2 weights."""
    import keras

    from featurize.model.backbone import build_backbone

    keras.utils.set_random_seed(seed)
    return build_backbone(weights=None).get_weights()


def file_arrays(path: str) -> list[np.ndarray]:
    """Load a Keras weights file into a freshly built backbone and return its arrays."""
    from featurize.model.backbone import build_backbone

    model = build_backbone(weights=None)
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError) as exc:
        raise WeightsError(
            f"Could not load {path} as MobileNetV2 (alpha 1.0, no top) weights: {exc}. "
            f"Pass a Keras .h5 / .weights.h5 file saved from that architecture."
        ) from exc
    return model.get_weights()


def _s3_weights(spec: str) -> ResolvedWeights:
    """Download an ``s3://`` weights file once, on the driver, into a temporary folder
    that lives as long as the process (the arrays are loaded from it on demand)."""
    import tempfile

    from featurize.storage import s3

    tmp = tempfile.mkdtemp(prefix="featurize-weights-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    local = os.path.join(tmp, os.path.basename(s3.S3Uri.parse(spec).key) or "weights.h5")
    try:
        s3.download(s3.client(), spec, local)
    except s3.S3Error as exc:
        raise WeightsError(f"--weights {spec}: {exc}") from exc
    check_loadable(local)
    logger.info("weights: file %s (downloaded once on the driver)", spec)
    return ResolvedWeights(spec, "file", lambda: file_arrays(local), path=spec,
                           sha256=sha256_file(local))


def check_loadable(path: str) -> None:
    """Refuse, before any work, a file that is not an HDF5 weights file (Keras .h5 and
    .weights.h5 both are), without importing Keras: the arrays load later, maybe not
    at all when the IR cache already holds them. A file of the right format but another
    architecture is refused when it is loaded."""
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        raise WeightsError(
            f"Could not load {path} as MobileNetV2 (alpha 1.0, no top) weights: {exc}. "
            f"Pass a Keras .h5 / .weights.h5 file saved from that architecture."
        ) from exc


def resolve_weights(spec: str, seed: int = DEFAULT_SEED) -> ResolvedWeights:
    """Resolve a ``--weights`` value into arrays, once, on the driver.

    Parameters
    ----------
    spec : str
        ``imagenet``, ``random``, a local path to a Keras weights file, or an ``s3://``
        URI of one (downloaded once, here).
    seed : int
        Seed for ``random``.

    Returns
    -------
    ResolvedWeights

    Raises
    ------
    WeightsError
        With a message that says what to change.
    """
    if spec == "imagenet":
        path = imagenet_weights_file()
        logger.info("weights: imagenet from %s", path)
        return ResolvedWeights(spec, "imagenet", lambda: file_arrays(path), path=path,
                               sha256=sha256_file(path))
    if spec == "random":
        logger.warning(
            "weights: RANDOM (seed %d) - features carry no ImageNet knowledge; "
            "use only for tests and smoke runs", seed,
        )
        return ResolvedWeights(spec, "random", lambda: random_arrays(seed), seed=seed)
    if spec.startswith(("s3://", "s3a://", "s3n://")):
        return _s3_weights(spec)
    path = spec[len("file://"):] if spec.startswith("file://") else spec
    if "://" in path:
        raise WeightsError(
            f"--weights {spec}: use imagenet, random, a local file path or an s3:// URI."
        )
    if not os.path.isfile(path):
        raise WeightsError(
            f"--weights {spec}: no such file. Pass imagenet, random, or the path of a "
            f"Keras weights file (.h5 / .weights.h5)."
        )
    check_loadable(path)
    logger.info("weights: file %s", path)
    path = os.path.abspath(path)
    return ResolvedWeights(spec, "file", lambda: file_arrays(path), path=path,
                           sha256=sha256_file(path))
