"""The ceiling: the same model, weights and preprocessing in one plain Python process,
with the engine at its best.

Decode + resize + preprocess (the package's function) + inference, then StandardScaler
+ PCA in NumPy (the same 0.95-variance rule) and a parquet write of features and
projections. The timer starts after the imports and includes weights loading and model
building (and, for openvino, reading the cached IR and compiling it).

- ``--engine openvino``: the job's IR (from the same cache), compiled with the faster
  of the THROUGHPUT and LATENCY hints on this machine (its own loop timed on the first
  ``HINT_SAMPLE`` images before the timer starts, as tensorflow's call is picked),
  batches of 16 through an ``AsyncInferQueue`` with the plugin's optimal number of
  requests, decoding the next batch while the CPU plugin infers.
- ``--engine tensorflow``: batch 64 with the faster of ``model.predict`` and a
  ``tf.function`` call.

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

from bench.images import list_images
from featurize.model.backbone import build_backbone
from featurize.model.preprocess import Preprocessing, preprocess_image
from featurize.model.weights import resolve_weights
from featurize.reduce.pca import choose_k

BATCH = 64
OV_BATCH = 16
HINT_SAMPLE = 480  # images each OpenVINO hint is timed on, before the timer


def pick_method(size: int) -> str:
    """Time predict vs tf.function on a throwaway model (outside the timer)."""
    import tensorflow as tf

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


def compile_ir(weights_spec: str, size: int, hint: str) -> object:
    """The job's cached IR, reshaped to batches of 16 and compiled with ``hint``."""
    import openvino as ov

    from featurize.model.engines.openvino_engine import cached_ir

    ir = cached_ir(resolve_weights(weights_spec), size)
    core = ov.Core()
    model = core.read_model(model=ir.xml, weights=ov.Tensor(np.frombuffer(ir.bin, np.uint8)))
    model.reshape([OV_BATCH, size, size, 3])
    return core.compile_model(model, "CPU", {"PERFORMANCE_HINT": hint,
                                             "INFERENCE_PRECISION_HINT": "f32"})


def pick_hint(files: list[Path], weights_spec: str,
              pre: Preprocessing) -> tuple[str, dict[str, float]]:
    """Run the ceiling's own loop (decode included) over the first ``HINT_SAMPLE`` images
    with the THROUGHPUT and the LATENCY hint, outside the timer; the faster one is the
    ceiling's. Returns it and images/s of each."""
    sample = files[:HINT_SAMPLE]
    rates = {}
    for hint in ("THROUGHPUT", "LATENCY"):
        t = time.perf_counter()
        openvino_features(sample, weights_spec, pre, hint, {})
        rates[hint] = len(sample) / (time.perf_counter() - t)
    return max(rates, key=rates.get), rates


def openvino_features(files: list[Path], weights_spec: str, pre: Preprocessing, hint: str,
                      stages: dict[str, float]) -> tuple[np.ndarray, float]:
    """Features through the job's own IR, compiled with ``hint``, async requests."""
    import openvino as ov

    t0 = time.perf_counter()
    compiled = compile_ir(weights_spec, pre.size, hint)
    feats = np.empty((len(files), 1280), dtype=np.float32)

    def done(request: object, start: int) -> None:
        out = request.get_output_tensor(0).data  # type: ignore[attr-defined]
        feats[start:start + OV_BATCH] = out[:len(feats) - start]

    queue = ov.AsyncInferQueue(compiled)
    queue.set_callback(done)
    stages["load_model"] = time.perf_counter() - t0
    decode_s = 0.0
    for i in range(0, len(files), OV_BATCH):
        td = time.perf_counter()
        batch = np.zeros((OV_BATCH, pre.size, pre.size, 3), np.float32)
        for j, f in enumerate(files[i:i + OV_BATCH]):
            batch[j] = preprocess_image(f.read_bytes(), preprocessing=pre)
        decode_s += time.perf_counter() - td
        queue.start_async({0: batch}, i)
    queue.wait_all()
    return feats, decode_s


def tensorflow_features(files: list[Path], weights_spec: str, pre: Preprocessing,
                        method: str, stages: dict[str, float]) -> tuple[np.ndarray, float]:
    """Features through Keras at batch 64, the faster call picked beforehand."""
    import tensorflow as tf

    t0 = time.perf_counter()
    size = pre.size
    weights = resolve_weights(weights_spec)
    model = build_backbone(size=size)
    model.set_weights(weights.arrays)
    fn = tf.function(lambda a: model(a, training=False),
                     input_signature=[tf.TensorSpec((BATCH, size, size, 3), tf.float32)])
    stages["load_model"] = time.perf_counter() - t0
    feats = np.empty((len(files), 1280), dtype=np.float32)
    decode_s = 0.0
    for i in range(0, len(files), BATCH):
        td = time.perf_counter()
        batch = np.stack([preprocess_image(f.read_bytes(), preprocessing=pre)
                          for f in files[i:i + BATCH]])
        decode_s += time.perf_counter() - td
        m = len(batch)
        if method == "predict":
            feats[i:i + m] = model.predict(batch, batch_size=BATCH, verbose=0)
        else:
            if m < BATCH:
                batch = np.concatenate([batch, np.zeros((BATCH - m, size, size, 3),
                                                        np.float32)])
            feats[i:i + m] = fn(batch).numpy()[:m]
    return feats, decode_s


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--engine", choices=("openvino", "tensorflow"), default="openvino")
    args = p.parse_args()
    files = list_images(Path(args.images))
    size = args.image_size
    pre = Preprocessing(size=size)
    if args.engine == "openvino":
        import openvino  # noqa: F401 - imported before the timer, as the job's are

        from featurize.model.engines.openvino_engine import cached_ir

        cached_ir(resolve_weights(args.weights), size)  # converted outside the timer
        hint, rates = pick_hint(files, args.weights, pre)
        print(f"ceiling: its loop on the first {HINT_SAMPLE} images, images/s: " + ", ".join(
            f"{h} {r:.1f}" for h, r in rates.items()) + f"; {hint} kept", flush=True)
        method = f"openvino async {hint}"
    else:
        method = pick_method(size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    stages: dict[str, float] = {}
    start = time.time()
    t0 = time.perf_counter()
    print(f"ceiling: timer start {time.strftime('%H:%M:%S')} ({len(files)} images, {method})",
          flush=True)
    if args.engine == "openvino":
        feats, decode_s = openvino_features(files, args.weights, pre, hint, stages)
    else:
        feats, decode_s = tensorflow_features(files, args.weights, pre, method, stages)
    t2 = time.perf_counter()
    stages["featurize"] = t2 - t0 - stages["load_model"]
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
