"""Each speed lever switched off in turn, on the same images (job only).

    python -m bench.levers [--n 2000]

Prints the job's end-to-end seconds and images/second per variant, and its ratio to
the default configuration measured in the same run.
"""
from __future__ import annotations

import argparse
import json

from bench.images import REPO, prepare
from bench.run import run_child

VARIANTS = [
    ("default (all levers)", {}),
    ("decode ahead on a second thread (one core a task)", {"decode_ahead": True}),
    ("2 inference threads per task (oversubscribed)", {"threads": 2}),
    ("engine tensorflow instead of openvino", {"engine": "tensorflow"}),
    ("32 files per task (Spark's default packing)", {"files_per_partition": 32}),
    ("batch 64 (one Arrow batch = 64 images)", {"batch_size": 64}),
]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--weights", default="imagenet")
    args = p.parse_args()
    work = REPO / "build" / "bench"
    images, source = prepare(args.n, work / "images")
    print(f"levers: {source}")
    results = []
    for name, extra in VARIANTS:
        print(f"- {name}", flush=True)
        job, _ = run_child("bench.job", ["--images", str(images), "--out", str(work / "lever"),
                                         "--weights", args.weights, "--extra", json.dumps(extra)])
        results.append((name, job))
    base = results[0][1]["images_per_second"]
    print(f"\n{'variant':48}{'seconds':>10}{'img/s':>10}{'vs default':>12}")
    for name, job in results:
        print(f"{name:48}{job['seconds']:>10.1f}{job['images_per_second']:>10.1f}"
              f"{job['images_per_second'] / base:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
