"""The Daft peer: what a user would write from Daft's documentation.

``from_glob_path`` → ``download`` → ``decode_image`` (RGB) → ``resize`` 224×224 (Daft's
Rust kernels; the whole frame, as Daft offers no crop box) → ``image_to_tensor`` → a
``@daft.cls`` running Keras MobileNetV2 (ImageNet, ``preprocess_input``, batch 64),
``max_concurrency`` = cores → features collected → StandardScaler + PCA (scikit-learn,
k components) → parquet of features and projections. Run by :mod:`bench.peer` in its own
virtualenv; prints one JSON line last.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from bench.peers.common import arguments, finish

SIZE = 224


def main() -> int:
    args = arguments()
    t0 = time.perf_counter()
    import daft
    import daft.functions as F
    from daft import DataType, col

    cores = os.cpu_count() or 1

    @daft.cls(max_concurrency=cores)
    class MobileNet:
        def __init__(self) -> None:
            from keras.applications import MobileNetV2

            self.model = MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False,
                                     pooling="avg", weights="imagenet")

        @daft.method.batch(return_dtype=DataType.embedding(DataType.float32(), 1280),
                           batch_size=64)
        def __call__(self, images):
            from keras.applications.mobilenet_v2 import preprocess_input

            pixels = np.stack(images.to_pylist()).astype(np.float32)
            return self.model.predict(preprocess_input(pixels), batch_size=64, verbose=0)

    pattern = os.path.join(args.input, "**", "*.jpg")
    df = daft.from_glob_path(pattern)
    df = df.with_column("image", F.resize(F.decode_image(F.download(col("path")),
                                                         mode="RGB"), SIZE, SIZE))
    df = df.with_column("image", F.image_to_tensor(col("image")))
    df = df.select(col("path"), MobileNet()(col("image")).alias("features"))
    table = df.to_arrow()
    finish(table.column("path").to_pylist(), np.stack(table.column("features").to_pylist()),
           args, t0, daft=daft.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
