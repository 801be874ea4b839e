"""spark-submit entry point: the similar-images index of a run's PCA features.

    spark-submit jobs/index_features.py --run RUN_DIR [--k 10] [--duplicates 0.95]
        [--exact-max 200000] [--sse AES256|aws:kms [--sse-kms-key-id KEY]]

Writes RUN_DIR/index/ (index.faiss, rows/, index.json), RUN_DIR/neighbours/ and, with
--duplicates, RUN_DIR/duplicates/ (featurize/search/job.py).
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
from featurize.rundir import RunDir
from featurize.search.index import EXACT_MAX
from featurize.search.job import IndexConfig

logger = logging.getLogger("featurize.jobs.index_features")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="index_features", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="run directory written by featurize_images")
    p.add_argument("--k", type=int, default=10, help="neighbours kept per image (default 10)")
    p.add_argument("--duplicates", type=float, default=None, metavar="T",
                   help="also write duplicates/: groups of images at cosine similarity T "
                        "or more (e.g. 0.95)")
    p.add_argument("--exact-max", type=int, default=EXACT_MAX,
                   help=f"an exact index up to this many images, approximate (IVF, recall@10 "
                        f">= 0.95 measured) beyond (default {EXACT_MAX})")
    encryption.add_flags(p)
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)

    def done(config: IndexConfig, summary: dict[str, Any]) -> None:
        rec = summary["index"]
        logger.info("%s index, recall@10 %.3f, %.3f ms a photo; in %s", rec["kind"],
                    rec["recall_at_10"], rec["query_ms_per_photo"],
                    RunDir(config.run).index_summary)

    return run_job("index_features", lambda: IndexConfig(
        run=args.run, k=args.k, duplicates=args.duplicates, exact_max=args.exact_max,
        encryption=encryption.Encryption.from_args(args)),
        "featurize.search.job", done)


if __name__ == "__main__":
    sys.exit(main())
