"""The index job (``jobs/index_features.py``): a finished run's PCA features → the
similar-images index, every image's neighbours and, with ``--duplicates T``, the groups
of near-duplicates.

Writes ``RUN/index/`` (``index.faiss``, ``rows/``: row → path, label; ``index.json``:
kind, size, build time, recall@10 against exact search, query time),
``RUN/neighbours/`` and ``RUN/duplicates/``; all replaced on every run. The features
searched are ``RUN/pca`` (standardised, projected): the cosine there is the cosine of the
standardised features within the variance PCA kept (``--pca-variance``, 0.95 by
default), at a fraction of the bytes.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from featurize.config import refuse_credentials
from featurize.encryption import Encryption
from featurize.errors import ConfigError
from featurize.manifest import FORMAT_VERSION, StageTimer, utc_now
from featurize.rundir import RunDir
from featurize.search import duplicates as dup
from featurize.search import index as ix
from featurize.search import neighbours as nb
from featurize.storage import filesystem
from featurize.storage.output import read_finished_run

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexConfig:
    """Options of ``jobs/index_features.py``."""

    run: str
    #: Neighbours kept per image.
    k: int = 10
    #: Cosine similarity at or above which two images are near-duplicates; None: no
    #: duplicates/.
    duplicates: float | None = None
    #: Exact index up to this many images, approximate beyond.
    exact_max: int = ix.EXACT_MAX
    #: ``--sse``: index/, neighbours/ and duplicates/ are written under it.
    encryption: Encryption = field(default_factory=Encryption)

    def __post_init__(self) -> None:
        refuse_credentials("--run", self.run)
        if not 1 <= self.k <= 1000:
            raise ConfigError(f"--k {self.k}: give 1 to 1000 neighbours")
        if self.duplicates is not None and not 0.0 < self.duplicates <= 1.0:
            raise ConfigError(f"--duplicates {self.duplicates}: give a cosine similarity "
                              f"in (0, 1], e.g. 0.95")
        if self.exact_max < 0:
            raise ConfigError(f"--exact-max {self.exact_max}: give 0 or more")


def run(spark: SparkSession, config: IndexConfig) -> dict[str, Any]:
    """Index ``RUN/pca``; returns what ``index.json`` holds."""
    timer = StageTimer()
    run_dir = RunDir(config.run)
    manifest = read_finished_run(spark, run_dir)
    frame = nb.numbered(spark, spark.read.parquet(run_dir.pca))
    try:
        n = frame.count()
        if n < 2:
            raise ConfigError(f"{config.run}: {n} featurized image(s); an index needs 2")
        with tempfile.TemporaryDirectory(prefix="featurize-index-") as tmp:
            with timer.stage("build"):
                record, local, shipped = nb.build_and_ship(spark, frame, n, config.exact_max,
                                                           tmp)
                filesystem.copy_from_local(spark, local, run_dir.index_file)
                frame.select("row", "path", "label").write.mode("overwrite").parquet(
                    run_dir.index_rows)
            with timer.stage("neighbours"):
                found = nb.neighbour_rows(frame, shipped, config.k, record["nprobe"]).persist()
                nb.neighbour_table(found, frame).write.mode("overwrite").parquet(
                    run_dir.neighbours)
        groups = None
        if config.duplicates is not None:
            with timer.stage("duplicates"):
                edge = dup.edges(nb.pairs(found), config.duplicates)
                labels = dup.components(edge)
                dup.groups(labels, frame).write.mode("overwrite").parquet(run_dir.duplicates)
                counted = spark.read.parquet(run_dir.duplicates).agg(
                    F.countDistinct("group").alias("groups"), F.count("*").alias("images")).first()
                groups = {"threshold": config.duplicates, "groups": counted["groups"],
                          "images": counted["images"]}
        else:
            filesystem.delete(spark, run_dir.duplicates)
        found.unpersist()
    finally:
        frame.unpersist()
    summary: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "job": "index_features", "indexed_at": utc_now(),
        "run": config.run, "config": asdict(config), "images": n, "k": config.k,
        # the PCA the indexed features come from: one photo's search refuses another
        "pca_model_id": (manifest.get("pca") or {}).get("model_id"),
        "index": record, "duplicates": groups,
        "timings_seconds": {**timer.seconds, "total": timer.total()}}
    filesystem.write_text(spark, run_dir.index_summary, json.dumps(summary, indent=2) + "\n")
    logger.info("%s index of %d images (recall@%d %.3f%s); neighbours%s", record["kind"], n,
                ix.RECALL_AT, record[f"recall_at_{ix.RECALL_AT}"],
                f", nprobe {record['nprobe']}" if record["nprobe"] else "",
                f"; {groups['groups']} duplicate group(s) of {groups['images']} images"
                if groups else "")
    return summary
