"""Session settings a job changes for a while: scoped SQL confs, and the cores a task owns."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession


@contextmanager
def sql_conf(spark: SparkSession, values: dict[str, str]) -> Iterator[None]:
    """Set session SQL confs for a block, then restore them."""
    old = {k: spark.conf.get(k, None) for k in values}
    for k, v in values.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


@contextmanager
def job_group(spark: SparkSession, group: str, description: str) -> Iterator[None]:
    """Run this thread's Spark jobs of a block in a named job group, then restore."""
    sc = spark.sparkContext
    keys = ("spark.jobGroup.id", "spark.job.description")
    old = {k: sc.getLocalProperty(k) for k in keys}
    sc.setJobGroup(group, description)
    try:
        yield
    finally:
        for k, v in old.items():
            sc.setLocalProperty(k, v)  # type: ignore[arg-type]  # None removes it


def task_cpus(spark: SparkSession) -> int:
    """``spark.task.cpus``: the cores one task (one model) may use."""
    return int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))
