"""spark-submit entry point: predict labels for new images with a trained run.

    spark-submit jobs/predict_images.py --run RUN_DIR --input IMAGES --output OUT [--overwrite]

Uses the run's weights (from its manifest), PCA model and classifier; refuses a run
whose classifier was trained on another PCA model, or weights/preprocessing that
differ from the run's. Writes OUT/predictions/, OUT/errors/, OUT/manifest.json.
Exit status: 0 complete, 2 bad configuration, 1 failed.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from featurize import encryption
from featurize.config import (
    DEFAULT_EXTENSIONS, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, ENGINES, PRECISIONS,
)
from featurize.entry import configure_logging, run_job
from featurize.rundir import RunDir

logger = logging.getLogger("featurize.jobs.predict_images")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="predict_images", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="trained run directory")
    p.add_argument("--input", required=True, help="folder of new images (searched recursively)")
    p.add_argument("--output", required=True, help="where predictions/ and errors/ go")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--extensions", default=",".join(DEFAULT_EXTENSIONS))
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    p.add_argument("--max-file-bytes", type=int, default=DEFAULT_MAX_FILE_BYTES,
                   help="files larger than this go to errors/ as too_large, unread")
    p.add_argument("--threads", "--tf-threads", dest="threads", type=int, default=None,
                   help="inference threads per task (default: spark.task.cpus)")
    p.add_argument("--engine", choices=ENGINES, default=None,
                   help="default: the engine the run was featurized with (another one is "
                        "refused: features would not match the run's)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="default: the run's")
    encryption.add_flags(p)
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="the regression's own probabilities, not the run's temperature")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    from featurize.classifier.predict import PredictConfig

    def done(config: Any, manifest: dict[str, Any]) -> None:
        logger.info("predictions: %s (%d images, %d failed)", RunDir(config.output).predictions,
                    manifest["counts"]["predicted"], manifest["counts"]["failed"])

    return run_job("predict_images", lambda: PredictConfig(
        run=args.run, input=args.input, output=args.output, batch_size=args.batch_size,
        overwrite=args.overwrite, extensions=tuple(e for e in args.extensions.split(",") if e),
        max_pixels=args.max_pixels, threads=args.threads,
        max_file_bytes=args.max_file_bytes, engine=args.engine, precision=args.precision,
        calibrate=args.calibrate, encryption=encryption.Encryption.from_args(args)), "featurize.classifier.predict", done)


if __name__ == "__main__":
    sys.exit(main())
