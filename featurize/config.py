"""The options of a run and their checks: the featurize job's frozen, validated
configuration, and the choices and defaults every stage shares (image size, decode,
engines, the feature length), so that this vocabulary imports nothing above it.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from featurize.encryption import Encryption
from featurize.errors import ConfigError

#: The input size MobileNetV2's ImageNet weights were trained at; any multiple of 32
#: from 96 to 512 works without the top (1280 features after the average pool).
DEFAULT_IMAGE_SIZE = 224
IMAGE_SIZES = tuple(range(96, 513, 32))
MODES = ("crop", "squash")
#: How a JPEG is decoded: ``draft`` (default) asks libjpeg for the smallest DCT scale
#: (1/8, 1/4, 1/2) that still holds the input size over the box, and resizes with a
#: two-step reduce; ``full`` decodes every pixel (every run made before draft existed).
DECODES = ("draft", "full")

#: Default cap on decoded pixels (width x height). Checked from the header, before
#: any pixel buffer is allocated, so a lying header cannot exhaust memory.
DEFAULT_MAX_PIXELS = 40_000_000

#: Extensions read by default (compared case-insensitively).
DEFAULT_EXTENSIONS = ("jpg", "jpeg", "png")

#: Length of a feature vector (MobileNetV2 alpha 1.0, no top, global average pooling).
FEATURE_DIM = 1280

#: Seed of ``--weights random``.
DEFAULT_SEED = 0

#: How the workers run the model (:mod:`featurize.model.engines`) and at what precision.
ENGINES = ("openvino", "tensorflow")
PRECISIONS = ("f32", "bf16")


def default_engine() -> str:
    """``openvino`` when the package is installed, else ``tensorflow``."""
    return "openvino" if importlib.util.find_spec("openvino") else "tensorflow"


def check_engine(engine: str, precision: str) -> None:
    """Refuse an unknown engine or precision, or one this machine cannot run.

    Raises
    ------
    ConfigError
    """
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine}: choose one of {', '.join(ENGINES)}.")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}.")
    if engine == "tensorflow" and precision != "f32":
        raise ConfigError("--precision bf16 needs --engine openvino (the tensorflow engine "
                          "runs f32 only).")
    if engine == "openvino" and importlib.util.find_spec("openvino") is None:
        raise ConfigError("--engine openvino: the openvino package is not installed here; "
                          "install the pinned set (make install) or pass --engine "
                          "tensorflow.")


#: Images per featurize task unless --files-per-partition says otherwise, when the Python
#: workers read the bytes (``--reader``). A task writes one ``features/`` file (its own
#: commit: a stopped run keeps every finished task's rows for ``--resume``), so this sets
#: the file size: 64-83 MB (a row is 1,280 float32, which Parquet compresses only to
#: 3.9-5.1 KB: clothing photos to Fruits-360), the low end of the 64-512 MB that Parquet
#: readers work best with. Not larger because a lost executor or a reclaimed Spot node
#: costs at most one such task (~8 minutes of one core at 33 images/s). Small runs are
#: cut by the cores first (:func:`featurize.extract.pipeline.plan_partitions`).
DEFAULT_FILES_PER_PARTITION = 16_384

#: The same when Spark's ``binaryFile`` scan reads the bytes: each of its tasks carries
#: its file list (~130 bytes a file, measured), and 6,144 files (~31 MB files) keep a
#: task under Spark's 1 MB warning size (13,107 made 1.5 MB tasks).
SCAN_FILES_PER_PARTITION = 6_144

#: How the featurize pass reads each file's bytes (``--reader``): ``auto`` (the workers
#: for local files, ``--input-list`` and S3 without a Hadoop filesystem; the scan for a
#: prefix on a Hadoop filesystem: EMR's ``s3://``, ``hdfs://``), ``workers`` (each Python
#: worker opens its files, or fetches its S3 objects with boto3) or ``scan`` (Spark's
#: ``binaryFile`` reader, in the JVM).
READERS = ("auto", "workers", "scan")

#: URI schemes that name S3 (Hadoop's connectors and EMR's ``s3://``).
S3_SCHEMES = ("s3", "s3a", "s3n")

#: Schemes a Python worker can read by itself (``--reader workers``): local, and S3
#: through boto3.
WORKER_SCHEMES = ("", "file", *S3_SCHEMES)

#: Files larger than this go to errors/ as ``too_large`` without their bytes being read
#: (``--max-file-bytes``; 0 = no limit). 128 MiB is far above any photo, and 16 of them
#: fit in one Arrow batch of a Python worker.
DEFAULT_MAX_FILE_BYTES = 128 * 1024 * 1024

#: The largest file Spark's binaryFile reader can hold (spark.sql.sources.binaryFile.
#: maxLength, Int.MaxValue): larger files are too_large whatever --max-file-bytes says.
BINARY_FILE_MAX_BYTES = 2**31 - 1


#: ``scheme://userinfo@`` of a URI (``https://user:pass@host``, ``s3://KEY:SECRET@bucket``);
#: an AWS secret key may hold '/', so after ``user:`` anything up to the '@' counts.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)"
                       r"(?P<userinfo>(?:[^/@\s:]*:[^@\s]*?|[^/@\s]*)@)")


def redact(text: str) -> str:
    """``text`` with the credentials part of every URI in it replaced by ``***``.

    >>> redact("--weights https://me:s3cret@host/w.h5 and s3://bucket/a@b")
    '--weights https://***@host/w.h5 and s3://bucket/a@b'
    >>> redact("s3://AKIAEXAMPLE:ab/c+d@bucket/in s3://bucket/x:y@z")
    's3://***@bucket/in s3://bucket/x:y@z'
    """
    return _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)


def refuse_credentials(flag: str, uri: str | None) -> None:
    """A URI that carries credentials would put them in the manifest and the logs:
    refused, and named without them.

    Raises
    ------
    ConfigError
    """
    if uri and _USERINFO.search(uri):
        raise ConfigError(
            f"{flag} {redact(uri)}: the URI carries credentials (user:password@). Remove "
            f"them: S3 credentials come from the AWS chain (profile, environment, instance "
            f"role), and a URI ends up in the manifest and the logs.")


@dataclass(frozen=True)
class FeaturizeConfig:
    """Everything the featurize job needs to know.

    Attributes
    ----------
    input : str
        Folder URI of images (searched recursively); with ``input_list``, the root the
        listed files are under (labels are their parent folders below it).
    output : str
        Run directory URI.
    weights : str
        ``imagenet``, ``random`` or a path to a Keras weights file.
    pca_k : int or None
        Number of PCA components; wins over ``pca_variance`` when given.
    pca_variance : float
        Keep the fewest components whose cumulative explained variance reaches this.
    batch_size : int
        Images per model call.
    seed : int
        Seed for ``--weights random``.
    overwrite : bool
        Replace an existing run directory.
    resume : bool
        Keep the features of inputs already in the run directory (same path, length and
        modification time), featurize the rest, rebuild PCA over the union.
    extensions : tuple of str
        File extensions read (case-insensitive).
    max_pixels : int
        Images with more pixels (by header) go to ``errors/`` as ``too_many_pixels``.
    threads : int or None
        Inference threads per task (either engine); default ``spark.task.cpus``.
    files_per_partition : int or None
        Upper bound on images per Spark partition; default
        :data:`DEFAULT_FILES_PER_PARTITION`.
    max_file_bytes : int
        Files larger than this go to ``errors/`` as ``too_large``, filtered on the
        ``length`` column before any content is read; 0 = no limit.
    preprocess : str
        ``crop`` (aspect kept, central crop) or ``squash`` (whole image resized).
    decode : str
        ``draft`` (default: a JPEG decoded at the smallest DCT scale that still holds
        the input size) or ``full`` (every pixel; runs made before draft).
    image_size : int
        Network input height and width: a multiple of 32 from 96 to 512.
    engine : str
        ``openvino`` (default where it is installed) or ``tensorflow``
        (:mod:`featurize.model.engines`).
    precision : str
        ``f32`` (default) or ``bf16`` (openvino only).
    encryption : Encryption
        Server-side encryption of what the job writes to S3 (``--sse``).
    decode_ahead : bool or None
        Decode the next batch on a second thread while the model runs the current one.
        None (default): when a task owns more than one core (``threads`` > 1); True or
        False forces it (the benchmarks' lever, no flag).
    input_list : str or None
        A file naming the inputs (CSV or Parquet with ``path`` [, ``label``], plain
        text, or an S3 Inventory ``manifest.json``): ``input`` is not listed.
    reader : str
        Who reads the bytes: ``auto``, ``workers`` or ``scan`` (:data:`READERS`).
    """

    input: str
    output: str
    weights: str = "imagenet"
    pca_k: int | None = None
    pca_variance: float = 0.95
    batch_size: int = 16
    seed: int = DEFAULT_SEED
    overwrite: bool = False
    resume: bool = False
    extensions: tuple[str, ...] = field(default=DEFAULT_EXTENSIONS)
    max_pixels: int = DEFAULT_MAX_PIXELS
    threads: int | None = None
    files_per_partition: int | None = None
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    preprocess: str = "crop"
    decode: str = "draft"
    image_size: int = DEFAULT_IMAGE_SIZE
    engine: str = field(default_factory=default_engine)
    precision: str = "f32"
    encryption: Encryption = field(default_factory=Encryption)
    input_list: str | None = None
    decode_ahead: bool | None = None
    reader: str = "auto"

    def __post_init__(self) -> None:
        if not self.input:
            raise ConfigError("--input is required: the folder (or s3:// prefix) of images.")
        if not self.output:
            raise ConfigError("--output is required: where the run directory is written.")
        for flag, uri in (("--input", self.input), ("--output", self.output),
                          ("--weights", self.weights), ("--input-list", self.input_list)):
            refuse_credentials(flag, uri)
        if isinstance(self.encryption, dict):  # from to_dict() / a manifest's config
            object.__setattr__(self, "encryption", Encryption(**self.encryption))
        if self.pca_k is not None and not 1 <= self.pca_k <= FEATURE_DIM:
            raise ConfigError(
                f"--pca-k {self.pca_k} is out of range: it must be between 1 and "
                f"{FEATURE_DIM} (the feature length)."
            )
        if not 0.0 < self.pca_variance <= 1.0:
            raise ConfigError(
                f"--pca-variance {self.pca_variance} is out of range: give a fraction in "
                f"(0, 1], e.g. 0.95."
            )
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size} must be at least 1.")
        if self.max_pixels < 1:
            raise ConfigError(f"--max-pixels {self.max_pixels} must be at least 1.")
        if self.max_file_bytes < 0:
            raise ConfigError(f"--max-file-bytes {self.max_file_bytes} must be 0 (no limit) "
                              f"or a positive number of bytes.")
        if self.overwrite and self.resume:
            raise ConfigError("--overwrite and --resume contradict each other: --overwrite "
                              "starts the run again, --resume keeps what it holds.")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads {self.threads} must be at least 1.")
        check_engine(self.engine, self.precision)
        if self.files_per_partition is not None and self.files_per_partition < 1:
            raise ConfigError(
                f"--files-per-partition {self.files_per_partition} must be at least 1."
            )
        exts = tuple(e.lower().lstrip(".") for e in self.extensions)
        if not exts or any(not e or not e.isalnum() for e in exts):
            raise ConfigError(
                f"--extensions {','.join(self.extensions)}: give letters/digits only, "
                f"e.g. jpg,jpeg,png."
            )
        object.__setattr__(self, "extensions", exts)
        if self.preprocess not in MODES:
            raise ConfigError(f"--preprocess {self.preprocess}: choose one of "
                              f"{', '.join(MODES)}.")
        if self.decode not in DECODES:
            raise ConfigError(f"--decode {self.decode}: choose one of {', '.join(DECODES)}.")
        self._check_reader()
        if self.image_size % 32 or not 96 <= self.image_size <= 512:
            raise ConfigError(f"--image-size {self.image_size}: give a multiple of 32 from "
                              f"96 to 512 (224 is what the ImageNet weights were trained at).")

    def _check_reader(self) -> None:
        if self.reader not in READERS:
            raise ConfigError(f"--reader {self.reader}: choose one of {', '.join(READERS)}.")
        if self.reader == "scan" and self.input_list:
            raise ConfigError("--reader scan reads a walked folder through Spark's binaryFile "
                              "reader; the files of --input-list are read by the workers "
                              "(leave --reader at auto).")
        scheme = urlsplit(self.input).scheme.lower()
        if self.reader == "workers" and scheme not in WORKER_SCHEMES:
            raise ConfigError(f"--reader workers: a Python worker reads local files and S3 "
                              f"objects only, not {scheme}://; use --reader scan (or auto).")

    @property
    def file_byte_limit(self) -> int:
        """The byte limit in force: ``max_file_bytes`` (0: none), capped at what
        ``binaryFile`` can read at all."""
        return min(self.max_file_bytes or BINARY_FILE_MAX_BYTES, BINARY_FILE_MAX_BYTES)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (for the manifest)."""
        d = asdict(self)
        d["extensions"] = list(self.extensions)
        return d
