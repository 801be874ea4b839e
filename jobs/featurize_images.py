"""spark-submit entry point: images → features, PCA and a manifest.

    spark-submit jobs/featurize_images.py --input DIR_OR_URI --output RUN_DIR_URI
    python jobs/featurize_images.py --input ... --output ...

Parses flags into a FeaturizeConfig, gets the SparkSession (never sets a master) and
calls featurize.extract.job.run. Exit status: 0 complete, 2 bad configuration, 1 failed run.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from featurize import encryption
from featurize.config import (
    DECODES, DEFAULT_EXTENSIONS, DEFAULT_FILES_PER_PARTITION, DEFAULT_IMAGE_SIZE,
    DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_SEED, ENGINES, MODES, PRECISIONS,
    READERS, SCAN_FILES_PER_PARTITION, FeaturizeConfig, default_engine,
)
from featurize.encryption import Encryption
from featurize.entry import configure_logging, run_job

logger = logging.getLogger("featurize.jobs.featurize_images")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="featurize_images",
        description="Featurize a folder of labelled images with MobileNetV2, then "
                    "StandardScaler + PCA. Writes a run directory.",
    )
    p.add_argument("--input", required=True,
                   help="folder of images, searched recursively; label = parent folder")
    p.add_argument("--input-list", default=None,
                   help="a file naming the inputs instead of listing --input: CSV with a "
                        "header 'path' (optional 'label'), Parquet with those columns, "
                        "plain text (one path a line), or an S3 Inventory manifest.json; "
                        "--input is then the root every path must be under")
    p.add_argument("--output", required=True, help="run directory to write")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (Keras cache/download), random (seeded), or a Keras "
                        "weights file path (default: imagenet)")
    p.add_argument("--pca-k", type=int, default=None,
                   help="number of PCA components (wins over --pca-variance)")
    p.add_argument("--pca-variance", type=float, default=0.95,
                   help="keep the fewest components reaching this explained variance "
                        "(default 0.95; ignored when --pca-k is given)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="images per model call (default 16: fastest per core measured)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help="seed for --weights random")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --output if it already holds something")
    p.add_argument("--resume", action="store_true",
                   help="keep the features of inputs already in --output (same path, "
                        "length and modification time), featurize only the others, "
                        "rebuild PCA over all of them")
    p.add_argument("--extensions", default=",".join(DEFAULT_EXTENSIONS),
                   help="comma-separated file extensions, any case (default jpg,jpeg,png)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="images with more pixels go to errors/ as too_many_pixels")
    p.add_argument("--max-file-bytes", type=int, default=DEFAULT_MAX_FILE_BYTES,
                   help="files larger than this go to errors/ as too_large, unread "
                        f"(default {DEFAULT_MAX_FILE_BYTES}; 0 = no limit)")
    p.add_argument("--preprocess", default=MODES[0], choices=MODES,
                   help="crop (default): keep the aspect ratio, take the central square "
                        "(87.5%% of the shorter side), as the ImageNet weights were "
                        "evaluated; squash: resize the whole image to the square")
    p.add_argument("--decode", default=DECODES[0], choices=DECODES,
                   help="draft (default): decode a JPEG at the smallest scale (1/2, 1/4, "
                        "1/8) that still holds the input size, ~3x faster on phone photos; "
                        "full: decode every pixel, as runs made before draft did (resume "
                        "such a run with --decode full)")
    p.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                   help="network input size, a multiple of 32 from 96 to 512 (default "
                        "224; larger helps photos with detail beyond 224 px, at about "
                        "(size/224)^2 the compute)")
    p.add_argument("--engine", choices=ENGINES, default=default_engine(),
                   help="inference engine: openvino (default where installed: the Keras "
                        "model converted once to OpenVINO IR) or tensorflow")
    p.add_argument("--precision", choices=PRECISIONS, default="f32",
                   help="f32 (default) or bf16 (openvino only; faster on CPUs with AMX or "
                        "AVX-512 BF16, features differ ~1e-1 relative)")
    p.add_argument("--threads", "--tf-threads", dest="threads", type=int, default=None,
                   help="inference threads per task (default: spark.task.cpus)")
    p.add_argument("--files-per-partition", type=int, default=None,
                   help="upper bound on images per Spark task, and so per features/ file "
                        f"(default {DEFAULT_FILES_PER_PARTITION}: 64-83 MB files; "
                        f"{SCAN_FILES_PER_PARTITION} with --reader scan)")
    p.add_argument("--reader", choices=READERS, default="auto",
                   help="who reads each file's bytes: workers (each Python worker opens "
                        "its files, or fetches its S3 objects with boto3), scan (Spark's "
                        "binaryFile reader in the JVM, any Hadoop filesystem), auto "
                        "(default: workers for local files, --input-list and S3 without "
                        "a Hadoop filesystem; scan for s3:// on EMR and hdfs://)")
    encryption.add_flags(p)
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(argv: Sequence[str] | None = None) -> FeaturizeConfig:
    """Parse flags into a validated config (raises ConfigError or SystemExit)."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    return FeaturizeConfig(
        input=args.input,
        output=args.output,
        weights=args.weights,
        pca_k=args.pca_k,
        pca_variance=args.pca_variance,
        batch_size=args.batch_size,
        seed=args.seed,
        overwrite=args.overwrite,
        resume=args.resume,
        extensions=tuple(e for e in args.extensions.split(",") if e),
        max_pixels=args.max_pixels,
        threads=args.threads,
        engine=args.engine,
        precision=args.precision,
        files_per_partition=args.files_per_partition,
        max_file_bytes=args.max_file_bytes,
        preprocess=args.preprocess,
        decode=args.decode,
        image_size=args.image_size,
        encryption=Encryption.from_args(args),
        input_list=args.input_list,
        reader=args.reader,
    )


def main(argv: Sequence[str] | None = None) -> int:
    def done(config: FeaturizeConfig, manifest: dict[str, Any]) -> None:
        logger.info("run directory: %s (status %s)", config.output, manifest["status"])

    return run_job("featurize_images", lambda: config_from_args(argv), "featurize.extract.job", done)


if __name__ == "__main__":
    sys.exit(main())
