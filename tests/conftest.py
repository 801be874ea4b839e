"""Shared fixtures: one small SparkSession, the weights the tests use, image makers."""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# FEATURIZE_SHARED_DIR lets a developer check the suite as a machine without ../shared sees it.
SHARED = Path(os.environ.get("FEATURIZE_SHARED_DIR", str(REPO.parent / "shared")))
SHARED_KERAS = SHARED / "keras"
FRUITS = SHARED / "data" / "fruits360-small"
REQUIRE_SHARED = os.environ.get("FEATURIZE_REQUIRE_SHARED") == "1"

# Before TensorFlow/Keras or Spark are imported anywhere: offline ImageNet weights from
# ../shared/keras when present (the real `imagenet` path), and Spark workers on this
# interpreter.
if "KERAS_HOME" not in os.environ and (SHARED_KERAS / "models").is_dir():
    os.environ["KERAS_HOME"] = str(SHARED_KERAS)
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from featurize.model.weights import IMAGENET_FILE  # noqa: E402

# tests/dag/ runs in the Airflow venv of `make dag-test` (Airflow is not in the job's .venv)
if importlib.util.find_spec("airflow") is None:
    collect_ignore = ["dag"]


def imagenet_available() -> bool:
    home = os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras")
    return os.path.isfile(os.path.join(home, "models", IMAGENET_FILE))


def require_imagenet() -> None:
    """For a test whose thresholds hold only with the ImageNet weights (random weights
    separate nothing): skipped without them, failed under FEATURIZE_REQUIRE_SHARED=1 (CI).
    Such checks live in tests of their own, so a run without the weights never reports
    them as passed."""
    if imagenet_available():
        return
    message = "the ImageNet weights are not in $KERAS_HOME/models (../shared/keras)"
    if REQUIRE_SHARED:
        pytest.fail(f"{message}, but FEATURIZE_REQUIRE_SHARED=1: accuracy cannot be checked")
    pytest.skip(f"{message}: accuracy is not checked")


def require_shared(path: Path) -> Path:
    """Skip when ``path`` (under ../shared) is absent; fail instead in CI."""
    if path.exists():
        return path
    message = f"{path} is not present"
    if REQUIRE_SHARED:
        pytest.fail(f"{message}, but FEATURIZE_REQUIRE_SHARED=1")
    pytest.skip(message)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if imagenet_available():
        return [f"featurize: weights = imagenet (KERAS_HOME={os.environ.get('KERAS_HOME')})"]
    return ["featurize: ImageNet weights NOT available: tests use a seeded random-weights "
            "file they write (parity still holds; accuracy tests skip)"]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's S3/EMR server on 127.0.0.1, reached only through boto3's standard
    ``AWS_ENDPOINT_URL`` variable (set before Spark starts, so executors inherit it)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield url
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def spark(moto_endpoint):
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("featurize-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.task.maxFailures", "1")
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled", "false")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def weights_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``imagenet`` when the Keras cache has it; else a seeded random weights file."""
    if imagenet_available():
        return "imagenet"
    import keras

    from featurize.model.backbone import build_backbone

    logging.getLogger(__name__).warning(
        "ImageNet weights not available: using a seeded random weights file")
    keras.utils.set_random_seed(1234)
    path = tmp_path_factory.mktemp("weights") / "random_mobilenet_v2.weights.h5"
    build_backbone(weights=None).save_weights(str(path))
    return str(path)


#: Images per digit in the trained sample run (its unseen digits start at this offset).
SAMPLE_PER_CLASS = 60


@pytest.fixture(scope="session")
def trained_sample_run(spark, weights_spec, tmp_path_factory):
    """The embedded sample (60 per digit) featurized and trained with a 0.2 test split:
    ``(run_dir, metrics)``. Shared by the train/predict and the web app tests; tests that
    change a run copy it first."""
    from featurize.classifier import train
    from featurize.config import FeaturizeConfig
    from featurize.extract import job
    from featurize.inputs.sample import write_sample

    root = tmp_path_factory.mktemp("sample")
    write_sample(str(root / "images"), per_class=SAMPLE_PER_CLASS)
    run_dir = root / "run"
    job.run(spark, FeaturizeConfig(input=str(root / "images"), output=str(run_dir),
                                   weights=weights_spec))
    metrics = train.run(spark, train.TrainConfig(run=str(run_dir), test_fraction=0.2, seed=0))
    return run_dir, metrics


@pytest.fixture(scope="session")
def resolved_weights(weights_spec: str):
    from featurize.model.weights import resolve_weights

    return resolve_weights(weights_spec)
