"""Weights resolution: imagenet through Keras' cache, random (seeded), files; no fallback."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from featurize.model import weights as W

#: sha256 of Keras' MobileNetV2 ImageNet file without the top
#: (mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5).
IMAGENET_SHA256 = "d42a456ded3f5732b97bb61693a19bd29cd42f0e3c830508f515d593fed59a88"


def test_random_is_seeded_and_recorded_as_random():
    a, b, c = W.resolve_weights("random", seed=3), W.resolve_weights("random", seed=3), \
        W.resolve_weights("random", seed=4)
    assert a.digest == b.digest != c.digest
    m = a.to_manifest()
    assert m["source"] == "random" and m["sha256"] == "random" and m["seed"] == 3


def test_weights_file_round_trip(tmp_path):
    rnd = W.resolve_weights("random", seed=7)
    from featurize.model.backbone import build_backbone

    model = build_backbone()
    model.set_weights(rnd.arrays)
    path = tmp_path / "w.weights.h5"
    model.save_weights(str(path))
    loaded = W.resolve_weights(str(path))
    assert loaded.source == "file" and loaded.sha256 == W.sha256_file(str(path))
    assert loaded.digest == rnd.digest
    assert all(np.array_equal(x, y) for x, y in zip(loaded.arrays, rnd.arrays))


def test_not_a_weights_file_is_refused(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(W.WeightsError, match="Could not load"):
        W.resolve_weights(str(bad))


def test_imagenet_offline_without_cache_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    # Port 9 (discard) on loopback refuses the connection: "offline", even on a machine
    # that is online.
    monkeypatch.setattr(W, "IMAGENET_BASE_URL", "http://127.0.0.1:9/")
    with pytest.raises(W.WeightsError) as info:
        W.resolve_weights("imagenet")
    message = str(info.value)
    assert "KERAS_HOME" in message and "--weights PATH" in message


def test_imagenet_uses_the_keras_cache_when_present():
    from tests.conftest import imagenet_available

    if not imagenet_available():
        from tests.conftest import SHARED_KERAS, require_shared

        require_shared(SHARED_KERAS / "models" / W.IMAGENET_FILE)
    resolved = W.resolve_weights("imagenet")
    assert resolved.source == "imagenet"
    assert resolved.path.endswith("models/" + W.IMAGENET_FILE)
    # the published file's digest, pinned (sha256sum of ../shared/keras's copy,
    # 2026-12-07), and hashed here without the package's function
    with open(resolved.path, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == IMAGENET_SHA256
    assert resolved.sha256 == IMAGENET_SHA256
