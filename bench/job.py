"""The job side of the benchmark: featurize_images on local Spark, end to end.

The timer starts after the imports and after the SparkSession exists, and stops when
``run`` returns (the manifest, the last write, is on disk). Prints one JSON line last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pyspark.sql import SparkSession

from featurize.config import FeaturizeConfig
from featurize.extract.job import run
from featurize.manifest import StageTimer


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--extra", default="{}", help="JSON of extra FeaturizeConfig fields")
    p.add_argument("--resume", action="store_true", help="--resume instead of --overwrite")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--master", default="local[*]",
                   help="e.g. local-cluster[1,2,4096]: executors in their own JVMs, so the "
                        "driver's JVM holds only the driver's state")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                   help="a Spark conf, e.g. spark.task.cpus=2 (repeatable)")
    args = p.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (SparkSession.builder.master(args.master).appName("featurize-bench")
               .config("spark.ui.enabled", "false").config("spark.driver.memory", args.driver_memory))
    for item in args.conf:
        key, _, value = item.partition("=")
        builder = builder.config(key, value)
    if args.master.startswith("local-cluster"):
        builder = builder.config("spark.executor.memory", "3g")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    config = FeaturizeConfig(input=args.images, output=args.out, weights=args.weights,
                             overwrite=not args.resume, resume=args.resume,
                             **json.loads(args.extra))
    start = time.time()
    t0 = time.perf_counter()
    print(f"job: timer start {time.strftime('%H:%M:%S')} (SparkSession up)", flush=True)
    timer = StageTimer()
    manifest = run(spark, config, timer)
    total = time.perf_counter() - t0
    print(f"job: timer stop  {time.strftime('%H:%M:%S')} after {total:.1f} s", flush=True)
    spark.stop()
    n = manifest["counts"]["inputs"]
    print(json.dumps({
        "seconds": total, "images": n, "images_per_second": n / total,
        "stages": {**timer.seconds, "total": round(total, 3)}, "pca_k": manifest["pca"]["k"],
        "featurized": manifest["counts"]["featurized"], "start": start,
        "partitions": manifest["spark"].get("partitions_used"),
        "engine": manifest["engine"],
        "featurize_images_per_second": manifest["images_per_second"]["featurize"],
        "cores": manifest["spark"]["default_parallelism"],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
