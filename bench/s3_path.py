"""The boto3 S3 path next to the local path, same images, same session (moto's server).

    python -m bench.s3_path [--n 500]

Starts moto's S3 server on 127.0.0.1 (through AWS_ENDPOINT_URL only), uploads the images,
then runs the job from local disk and from s3:// (output local in both), and prints
images/second for each. Local S3 emulation: this measures the job's own overhead of the
boto3 path (listing, per-task clients, fetches), not a real network.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--weights", default="imagenet")
    args = p.parse_args()
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                       "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    import boto3
    import tensorflow  # noqa: F401 - before the timers
    from pyspark.sql import SparkSession

    from bench.images import REPO, prepare
    from featurize.config import FeaturizeConfig
    from featurize.extract.job import run

    images, source = prepare(args.n, REPO / "build" / "bench" / "images")
    client = boto3.client("s3")
    client.create_bucket(Bucket="bench")
    for path in images.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), "bench", "in/" + path.relative_to(images).as_posix())
    spark = (SparkSession.builder.master("local[*]").config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "4g").getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    print(f"s3_path: {source}")
    results = {}
    for name, uri in (("local disk", str(images)), ("s3:// via boto3", "s3://bench/in")):
        out = REPO / "build" / "bench" / f"s3-compare-{len(results)}"
        t = time.perf_counter()
        m = run(spark, FeaturizeConfig(input=uri, output=str(out), weights=args.weights,
                                       overwrite=True))
        total = time.perf_counter() - t
        results[name] = (total, m["images_per_second"]["featurize"], m["io"])
    spark.stop()
    server.stop()
    print(f"{'input':20}{'io':>32}{'end to end s':>14}{'img/s e2e':>11}{'img/s featurize':>17}")
    for name, (total, feat, io) in results.items():
        print(f"{name:20}{str(io):>32}{total:>14.1f}{args.n / total:>11.1f}{feat:>17.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
