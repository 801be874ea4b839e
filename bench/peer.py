"""The job against a peer written with pyspark's own tools, whole processes, same images.

    python -m bench.peer [--n 3000] [--weights imagenet] [--k 300]

Runs, one after the other on the same N images, each as a whole ``spark-submit``
process timed from launch to exit (JVM start and all):

1. the peer (:mod:`bench.peer_job`): ``predict_batch_udf`` around Keras + Spark ML
   StandardScaler/PCA with k components;
2. ``jobs/featurize_images.py`` with its defaults (``--pca-k`` = the same k, so both
   fit and write the same amount).

The last line is exactly ``ratio job/peer: X.XX`` = peer seconds ÷ job seconds (above
1.00: the job is faster).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.images import REPO, prepare

SUBMIT = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[*]",
          "--driver-memory", "4g", "--conf", "spark.ui.enabled=false"]


def timed(name: str, argv: list[str]) -> float:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    t0 = time.perf_counter()
    proc = subprocess.run([*SUBMIT, *argv], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{name} failed (exit {proc.returncode})")
    print(f"{name}: {seconds:.1f} s", flush=True)
    return seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--k", type=int, default=300, help="PCA components, both sides")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--work", default=str(REPO / "build" / "bench"))
    args = p.parse_args()
    work = Path(args.work)
    images, source = prepare(args.n, work / "images")
    print(f"peer bench: {source}; {os.cpu_count()} cores; PCA k={args.k}", flush=True)
    for out in ("peer", "peer-job"):
        shutil.rmtree(work / out, ignore_errors=True)
    peer = timed("peer (predict_batch_udf + Spark ML scaler/PCA)",
                 ["bench/peer_job.py", "--input", str(images), "--output",
                  str(work / "peer"), "--k", str(args.k)])
    job = timed("job (jobs/featurize_images.py)",
                ["jobs/featurize_images.py", "--input", str(images), "--output",
                 str(work / "peer-job"), "--weights", args.weights, "--pca-k", str(args.k)])
    print(f"images/s whole process: peer {args.n / peer:.1f}, job {args.n / job:.1f}")
    print(f"ratio job/peer: {peer / job:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
