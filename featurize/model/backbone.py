"""The model's definition: Keras MobileNetV2 without its top, average-pooled.

Keras is the definition of the model and of its weights, whichever engine runs it
(:mod:`featurize.model.engines`).
"""
from __future__ import annotations

from typing import Any

from featurize.config import DEFAULT_IMAGE_SIZE

DEFAULT_SIZE = DEFAULT_IMAGE_SIZE


def model_name(size: int = DEFAULT_SIZE) -> str:
    """The model as the manifest records it (the input size is part of it)."""
    return (f"MobileNetV2(alpha=1.0, include_top=False, pooling='avg', "
            f"input {size}x{size}x3)")


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
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras.applications import MobileNetV2

    return MobileNetV2(
        input_shape=(size, size, 3), include_top=False, pooling="avg", weights=weights
    )
