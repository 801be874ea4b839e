"""spark-submit entry point: train a classifier on a run's PCA features.

    spark-submit jobs/train_classifier.py --run RUN_DIR [--test-fraction 0.2] [--seed 0]
        [--split-file split.csv] [--reg-param auto|0.001] [--no-calibrate]
        [--elastic-net-param 0.0] [--max-iter 200] [--standardize]

Writes RUN_DIR/models/classifier/, RUN_DIR/metrics.json and RUN_DIR/test_predictions/.
Exit status: 0 done, 2 bad configuration, 1 failed.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from featurize import encryption
from featurize.classifier.train import TrainConfig
from featurize.entry import configure_logging, run_job
from featurize.rundir import RunDir
from featurize.search.index import DUPLICATE_THRESHOLD as DEFAULT_THRESHOLD

logger = logging.getLogger("featurize.jobs.train_classifier")


def reg_param(text: str) -> float | None:
    """``auto`` → ``None`` (cross-validated), else a non-negative number."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def leakage_threshold(text: str) -> float | None:
    """``off`` → ``None``, else a number (TrainConfig checks its range)."""
    if text.strip().lower() == "off":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'off' or a number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train_classifier", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="run directory written by featurize_images")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of each label held out for testing (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified split")
    p.add_argument("--split-file", default=None,
                   help="CSV of 'Training|Test,<label>,<file name>' instead of a random split")
    p.add_argument("--reg-param", type=reg_param, default=None, metavar="auto|NUMBER",
                   help="regularisation strength, or 'auto' (the default): chosen by "
                        "3-fold cross-validation on the training split")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="keep the regression's own probabilities (no temperature scaling)")
    p.add_argument("--elastic-net-param", type=float, default=0.0,
                   help="0 = L2, 1 = L1 (default 0)")
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--group-folds", type=float, default=None, metavar="T",
                   help="keep training images at cosine >= T (near-duplicate groups) in one "
                        "cross-validation fold (default: off)")
    p.add_argument("--leakage", type=leakage_threshold, default=DEFAULT_THRESHOLD,
                   metavar="T|off",
                   help="count the test images with a training image at cosine >= T, "
                        f"near-duplicates across the split (default {DEFAULT_THRESHOLD}; "
                        "off: not checked)")
    p.add_argument("--standardize", action="store_true",
                   help="let LogisticRegression rescale each PCA component to unit variance "
                        "(off by default: it amplifies the noise components)")
    encryption.add_flags(p)
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    def done(config: TrainConfig, metrics: dict[str, Any]) -> None:
        logger.info("test accuracy %.4f (macro-F1 %.4f); metrics in %s",
                    metrics["accuracy"], metrics["macro_f1"], RunDir(config.run).metrics)

    return run_job("train_classifier", lambda: TrainConfig(
        run=args.run, test_fraction=args.test_fraction, seed=args.seed,
        split_file=args.split_file, reg_param=args.reg_param,
        elastic_net_param=args.elastic_net_param, max_iter=args.max_iter,
        standardize=args.standardize, calibrate=args.calibrate, leakage=args.leakage,
        group_folds=args.group_folds,
        encryption=encryption.Encryption.from_args(args)), "featurize.classifier.train", done)


if __name__ == "__main__":
    sys.exit(main())
