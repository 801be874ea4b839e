"""The ceiling: the same model, weights and preprocessing in one plain Python process.

Decode + resize + preprocess (the package's function) + inference at batch 64 with the
faster of ``model.predict`` and a ``tf.function`` call, then StandardScaler + PCA in
NumPy (the same 0.95-variance rule) and a parquet write of features and projections.
The timer starts after the imports and includes weights loading and model building.
Prints one JSON line last.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from bench.images import list_images
from featurize.images import Preprocessing, preprocess_image
from featurize.model import build_backbone
from featurize.reduce import choose_k
from featurize.weights import resolve_weights

BATCH = 64


def pick_method(size: int) -> str:
    """Time predict vs tf.function on a throwaway model (outside the timer)."""
    model = build_backbone(size=size)
    x = np.random.default_rng(0).random((BATCH, size, size, 3), dtype=np.float32)
    fn = tf.function(lambda a: model(a, training=False),
                     input_signature=[tf.TensorSpec((BATCH, size, size, 3), tf.float32)])
    timings = {}
    for name, call in (("predict", lambda: model.predict(x, batch_size=BATCH, verbose=0)),
                       ("tf.function", lambda: fn(x).numpy())):
        call()
        t = time.perf_counter()
        for _ in range(3):
            call()
        timings[name] = (time.perf_counter() - t) / 3
    return min(timings, key=timings.get)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--image-size", type=int, default=224)
    args = p.parse_args()
    files = list_images(Path(args.images))
    size = args.image_size
    pre = Preprocessing(size=size)
    method = pick_method(size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    stages: dict[str, float] = {}
    start = time.time()
    t0 = time.perf_counter()
    print(f"ceiling: timer start {time.strftime('%H:%M:%S')} ({len(files)} images, {method})",
          flush=True)
    weights = resolve_weights(args.weights)
    model = build_backbone(size=size)
    model.set_weights(weights.arrays)
    fn = tf.function(lambda a: model(a, training=False),
                     input_signature=[tf.TensorSpec((BATCH, size, size, 3), tf.float32)])
    t1 = time.perf_counter()
    stages["load_model"] = t1 - t0
    feats = np.empty((len(files), 1280), dtype=np.float32)
    decode_s = 0.0
    for i in range(0, len(files), BATCH):
        td = time.perf_counter()
        batch = np.stack([preprocess_image(f.read_bytes(), preprocessing=pre) for f in files[i:i + BATCH]])
        decode_s += time.perf_counter() - td
        m = len(batch)
        if method == "predict":
            feats[i:i + m] = model.predict(batch, batch_size=BATCH, verbose=0)
        else:
            if m < BATCH:
                batch = np.concatenate([batch, np.zeros((BATCH - m, size, size, 3), np.float32)])
            feats[i:i + m] = fn(batch).numpy()[:m]
    t2 = time.perf_counter()
    stages["featurize"] = t2 - t1
    stages["of which decode"] = decode_s

    x = feats.astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0, ddof=1)
    z = np.divide(x - mean, std, out=np.zeros_like(x), where=std > 0)
    eigvals, eigvecs = np.linalg.eigh(np.cov(z, rowvar=False))
    order = np.argsort(eigvals)[::-1]
    eigvals = np.clip(eigvals[order], 0, None)
    k = choose_k(eigvals / eigvals.sum(), 0.95)
    projected = (z @ eigvecs[:, order[:k]]).astype(np.float32)
    t3 = time.perf_counter()
    stages["pca_fit"] = t3 - t2

    paths = [str(f) for f in files]
    labels = [f.parent.name for f in files]
    pq.write_table(pa.table({"path": paths, "label": labels,
                             "features": pa.array(list(feats), pa.list_(pa.float32()))}),
                   out / "features.parquet")
    pq.write_table(pa.table({"path": paths, "label": labels,
                             "pca_features": pa.array(list(projected), pa.list_(pa.float32()))}),
                   out / "pca.parquet")
    t4 = time.perf_counter()
    stages["write"] = t4 - t3
    total = t4 - t0
    print(f"ceiling: timer stop  {time.strftime('%H:%M:%S')} after {total:.1f} s", flush=True)
    print(json.dumps({
        "seconds": total, "images": len(files), "images_per_second": len(files) / total,
        "stages": stages, "method": method, "pca_k": int(k), "start": start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
