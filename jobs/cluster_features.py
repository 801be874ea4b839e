"""spark-submit entry point: cluster a run's PCA features with KMeans.

    spark-submit jobs/cluster_features.py --run RUN_DIR [--k K] [--k-min 2 --k-max 20]
        [--distance cosine|euclidean] [--restarts 3] [--seed 0] [--max-iter 50]
        [--sse AES256|aws:kms [--sse-kms-key-id KEY]]

Writes RUN_DIR/clusters/ and RUN_DIR/clusters.json (featurize/review/clusters.py).
Exit status: 0 done, 2 bad configuration, 1 failed.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from featurize import encryption
from featurize.entry import configure_logging, run_job
from featurize.review.clusters import ClusterConfig
from featurize.rundir import RunDir

logger = logging.getLogger("featurize.jobs.cluster_features")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cluster_features", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="run directory written by featurize_images")
    p.add_argument("--k", type=int, default=None,
                   help="number of clusters (default: chosen by the silhouette in the range, "
                        "the smallest k within one sd of the best mean over the restarts)")
    p.add_argument("--k-min", type=int, default=2, help="smallest k tried (default 2)")
    p.add_argument("--k-max", type=int, default=20, help="largest k tried (default 20)")
    p.add_argument("--seed", type=int, default=0, help="KMeans' seed")
    p.add_argument("--max-iter", type=int, default=50, help="KMeans' iterations at most")
    p.add_argument("--restarts", type=int, default=3,
                   help="KMeans fits per k: the lowest cost kept, their silhouettes' mean "
                        "and sd choose k (default 3)")
    p.add_argument("--distance", choices=("cosine", "euclidean"), default="cosine",
                   help="KMeans' and the silhouette's distance (default cosine)")
    encryption.add_flags(p)
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)

    def done(config: ClusterConfig, summary: dict[str, Any]) -> None:
        extra = (f"; against the labels: ARI {summary['adjusted_rand_index']:.3f}, purity "
                 f"{summary['purity']:.3f}" if summary["adjusted_rand_index"] is not None
                 else "")
        logger.info("k=%d, silhouette %.4f%s; in %s", summary["k"], summary["silhouette"],
                    extra, RunDir(config.run).clusters_summary)

    return run_job("cluster_features", lambda: ClusterConfig(
        run=args.run, k=args.k, k_min=args.k_min, k_max=args.k_max, seed=args.seed,
        max_iter=args.max_iter, distance=args.distance,
        restarts=args.restarts, encryption=encryption.Encryption.from_args(args)),
        "featurize.review.clusters", done)


if __name__ == "__main__":
    sys.exit(main())
