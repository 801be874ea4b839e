"""What the ``jobs/`` entry points share: flags → config with the exit status of a usage
error, and a SparkSession around one job with the exit status of its outcome.

Exit status by base class only (:mod:`featurize.errors`): 0 done, 2 a
:class:`~featurize.errors.UsageError` (nothing written), 1 a
:class:`~featurize.errors.RunFailure` (the manifest says ``failed``); anything else
propagates as a traceback, which Python exits with 1.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from featurize.errors import FeaturizeError, UsageError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _not_a_py4j_retry(record: logging.LogRecord) -> bool:
    """py4j's gateway logs a send it is about to retry, traceback and all, on the *root*
    logger at INFO (java_gateway.py: ``logging.info("Exception while sending command.",
    exc_info=True)``); the retry's outcome is what matters, and a failed one raises."""
    return not (record.name == "root" and record.levelno < logging.WARNING
                and f"{os.sep}py4j{os.sep}" in record.pathname)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    # py4j logs every connection it closes at INFO on its own loggers: noise in the
    # job's log, not news. Its retried sends go to the root logger: filtered out.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_a_py4j_retry)


def build_config(prog: str, make: Callable[[], Any]) -> tuple[int, Any]:
    """``(0, make())``, or ``(2, None)`` with the message on stderr for a usage error."""
    try:
        return 0, make()
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2, None


def submit(app_name: str, job: Callable[[Any, Any], Any], config: Any) -> tuple[int, Any]:
    """Run ``job(spark, config)`` in a SparkSession named ``app_name``, then stop it.

    Returns ``(0, result)``, or the error's exit status and None, with the message
    logged on ``featurize.jobs.<app_name>``.
    """
    logger = logging.getLogger(f"featurize.jobs.{app_name}")
    # Under `python jobs/...` pyspark starts workers with `python3` from PATH; use this
    # interpreter instead unless the environment (spark-env on EMR) already chose one.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(app_name).getOrCreate()
    if not spark.sparkContext.getConf().contains("spark.log.level"):
        # Spark's own default is INFO: a line per file read and per task. The job's
        # log is its own lines and Spark's warnings; --conf spark.log.level=INFO brings
        # the rest back (and spark.log.level=WARN also quiets the start-up lines).
        spark.sparkContext.setLogLevel("WARN")
    # Every job's config carries its --sse; S3A must have it before the first path.
    config.encryption.apply(spark)
    try:
        return 0, job(spark, config)
    except FeaturizeError as exc:
        what = "bad configuration" if isinstance(exc, UsageError) else "run failed"
        logger.error("%s: %s", what, exc)
        return exc.exit_status, None
    finally:
        spark.stop()


def run_job(app_name: str, make_config: Callable[[], Any], job_module: str,
            done: Callable[[Any, Any], None]) -> int:
    """An entry point's whole life: config (exit 2 on a usage error), then
    ``<job_module>.run(spark, config)`` in a session, then ``done(config, result)``.

    The job module is imported only once the flags are good: a bad flag costs no Spark
    or TensorFlow import.
    """
    status, config = build_config(app_name, make_config)
    if status:
        return status
    status, result = submit(app_name, importlib.import_module(job_module).run, config)
    if status:
        return status
    done(config, result)
    return 0
