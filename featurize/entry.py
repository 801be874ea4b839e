"""What the ``jobs/`` entry points share: a SparkSession around one job, and the exit
status (0 done, 2 bad configuration the job found, 1 a failure it reports)."""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any


def submit(app_name: str, job: Callable[[Any, Any], Any], config: Any,
           usage_errors: tuple[type[Exception], ...],
           failures: tuple[type[Exception], ...] = (),
           failed: str = "run failed") -> tuple[int, Any]:
    """Run ``job(spark, config)`` in a SparkSession named ``app_name``, then stop it.

    Returns ``(0, result)``; ``(2, None)`` for ``usage_errors`` and ``(1, None)`` for
    ``failures``, each logged on ``featurize.jobs.<app_name>``. Anything else propagates
    (a traceback, exit status 1).
    """
    logger = logging.getLogger(f"featurize.jobs.{app_name}")
    # Under `python jobs/...` pyspark starts workers with `python3` from PATH; use this
    # interpreter instead unless the environment (spark-env on EMR) already chose one.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(app_name).getOrCreate()
    try:
        return 0, job(spark, config)
    except usage_errors as exc:
        logger.error("%s", exc)
        return 2, None
    except failures as exc:
        logger.error("%s: %s", failed, exc)
        return 1, None
    finally:
        spark.stop()
