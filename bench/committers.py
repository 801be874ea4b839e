"""Parquet on S3 through S3A: FileOutputCommitter v1 (the job's choice) against the S3A
magic committer, same rows, same session, against a moto server.

    python -m bench.committers [--rows 600] [--partitions 4] [--repeat 3]

Needs ``make jars``. Writes a features-like table (path, label, 1280 floats per row) to
``s3a://bench/...`` with each committer ``--repeat`` times, checks that every write
reads back whole with no temporary keys left, and prints the median seconds of each
and their ratio. moto is local: this measures the committers' request pattern
(v1: write under _temporary, then copy + delete each file at job commit; magic: multipart
uploads completed at job commit, no copy), not a real network.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

COMMITTERS = {
    "v1": {"mapreduce.fileoutputcommitter.algorithm.version": "1"},
    "magic": {
        "mapreduce.outputcommitter.factory.scheme.s3a":
            "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory",
        "fs.s3a.committer.name": "magic",
        "fs.s3a.committer.magic.enabled": "true",
    },
}
MAGIC_SQL = {
    "spark.sql.sources.commitProtocolClass":
        "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol",
    "spark.sql.parquet.output.committer.class":
        "org.apache.spark.internal.io.cloud.BindingParquetOutputCommitter",
}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=600)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    import os

    from emr.rehearsal import hadoop, jars
    from emr.rehearsal.run import moto_s3

    classpath = ":".join(str(j) for j in jars.paths() if j.name.startswith(
        ("hadoop-aws", "aws-java-sdk", "spark-hadoop-cloud")))
    with moto_s3() as env:
        import boto3
        import numpy as np
        from pyspark.sql import SparkSession

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (SparkSession.builder.master("local[2]").appName("bench-committers")
                   .config("spark.driver.extraClassPath", classpath)
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false"))
        for k, v in hadoop.s3a_properties(env["AWS_ENDPOINT_URL"]).items():
            builder = builder.config(f"spark.hadoop.{k}", v)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        rng = np.random.default_rng(0)
        rows = [(f"s3://in/{i}.jpg", str(i % 10), rng.random(1280, dtype=np.float32).tolist())
                for i in range(args.rows)]
        df = spark.createDataFrame(rows, "path string, label string, features array<float>"
                                   ).repartition(args.partitions).cache()
        df.count()
        seconds: dict[str, list[float]] = {name: [] for name in COMMITTERS}
        for i in range(args.repeat):
            for name, options in COMMITTERS.items():
                uri = f"s3a://bench/{name}-{i}"
                for k, v in (MAGIC_SQL.items() if name == "magic" else ()):
                    spark.conf.set(k, v)
                start = time.perf_counter()
                df.write.options(**options).parquet(uri)
                seconds[name].append(time.perf_counter() - start)
                for k in MAGIC_SQL:
                    spark.conf.unset(k)
                assert spark.read.parquet(uri).count() == args.rows
                keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket="bench", Prefix=f"{name}-{i}/") for o in page.get("Contents", [])]
                left = [k for k in keys if "_temporary" in k or "__magic" in k]
                assert not left, f"{name}: left behind {left[:3]}"
        spark.stop()
    med = {name: statistics.median(v) for name, v in seconds.items()}
    for name, v in seconds.items():
        print(f"{name:6s} median {med[name]:.2f} s  ({', '.join(f'{x:.2f}' for x in v)})")
    print(f"rows {args.rows}, partitions {args.partitions}: v1/magic = "
          f"{med['v1'] / med['magic']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
