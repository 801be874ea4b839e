"""The Ray Data peer: what a user would write from Ray Data's documentation.

``read_binary_files`` (paths included) → ``map_batches`` decoding with Pillow (RGB,
resized 224×224, the whole frame) → ``map_batches`` with a Keras MobileNetV2 actor class
(ImageNet, ``preprocess_input``, batch 64), ``concurrency`` = cores → features taken →
StandardScaler + PCA (scikit-learn, k components) → parquet of features and projections.
On a few cores the tasks get fractions of a CPU (read and decode 0.25, each actor 0.5),
or the actors hold every CPU and the reads never run. Run by :mod:`bench.peer` in its own
virtualenv; prints one JSON line last.
"""
from __future__ import annotations

import io
import os
import sys
import time

import numpy as np

from bench.peers.common import arguments, finish

SIZE = 224


def decode(batch: dict) -> dict:
    from PIL import Image

    pixels = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB").resize((SIZE, SIZE),
                                                                         Image.BILINEAR))
              for b in batch["bytes"]]
    return {"path": batch["path"], "image": np.stack(pixels)}


class MobileNet:
    def __init__(self) -> None:
        from keras.applications import MobileNetV2

        self.model = MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False,
                                 pooling="avg", weights="imagenet")

    def __call__(self, batch: dict) -> dict:
        from keras.applications.mobilenet_v2 import preprocess_input

        pixels = preprocess_input(batch["image"].astype(np.float32))
        return {"path": batch["path"],
                "features": self.model.predict(pixels, batch_size=64, verbose=0)}


def main() -> int:
    args = arguments()
    t0 = time.perf_counter()
    import ray

    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    ds = ray.data.read_binary_files(args.input, include_paths=True,
                                    file_extensions=["jpg"],
                                    ray_remote_args={"num_cpus": 0.25})
    ds = ds.map_batches(decode, batch_size=64, num_cpus=0.25)
    ds = ds.map_batches(MobileNet, batch_size=64, concurrency=cores, num_cpus=0.5)
    rows = ds.to_pandas()
    finish(rows["path"].tolist(), np.stack(rows["features"].to_numpy()), args, t0,
           ray=ray.__version__)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
