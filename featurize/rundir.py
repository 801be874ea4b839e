"""The run directory: every path inside it and every table schema, in one place.

::

    RUN/manifest.json        what ran, with what, how it went (status last)
    RUN/features/            path, label, length, modification_time, features[1280]
    RUN/errors/              path, label, length, modification_time, error, detail
    RUN/pca/                 path, label, pca_features[k]
    RUN/models/pca/          StandardScaler + PCA PipelineModel
    RUN/models/classifier/   after train: the classifier PipelineModel
    RUN/models/classifier.npz  after train: scaler + PCA + classifier + T in NumPy
    RUN/metrics.json         after train: accuracy, macro-F1, per class, confusion matrix
    RUN/test_predictions/    after train: the test split's predictions
    RUN/clusters/            after cluster_features: path, label, cluster, distance
    RUN/clusters.json        after cluster_features: k, silhouette per k, ARI, purity
    RUN/index/               after index_features: index.faiss, index.json, rows/ (row, path, label)
    RUN/neighbours/          after index_features: path, neighbours[{path, similarity}]
    RUN/duplicates/          after index_features --duplicates T: group, path, similarity
    RUN/report/              after ``make report``: PNGs and index.html
    OUT/predictions/         a predict job's output folder: path, predicted_label, ...

Paths are URIs joined with ``/`` (``file:``, plain local paths, ``s3://`` alike); a local
run directory's paths are ordinary file paths.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

MANIFEST = "manifest.json"
METRICS = "metrics.json"

#: ``features/`` rows (and the resume reader's explicit schema: a folder a stopped write
#: left empty reads as zero rows, not an error).
FEATURES_DDL = ("path string, label string, length long, modification_time timestamp, "
                "features array<float>")
ERRORS_DDL = ("path string, label string, length long, modification_time timestamp, "
              "error string, detail string")
FEATURES_COLUMNS = ("path", "label", "length", "modification_time", "features")
ERRORS_COLUMNS = ("path", "label", "length", "modification_time", "error", "detail")
#: :class:`ErrorRecord` as a Spark row: the modification time as epoch milliseconds, so
#: no Python datetime (time zone, DST folding) sits between a file's status and its row.
ERROR_RECORD_DDL = ("path string, label string, length long, mtime_ms long, error string, "
                    "detail string")
#: The key of a listed file: what ``--resume`` matches old rows on.
FILE_KEY_DDL = "path string, length long, mtime_ms long"
PREDICTIONS_COLUMNS = ("path", "predicted_label", "confidence", "probabilities")
PREDICTIONS_SCHEMA = ("struct<path:string,predicted_label:string,confidence:double,"
                      "probabilities:map<string,double>>")
TEST_PREDICTIONS_COLUMNS = ("path", "label", "predicted_label", "confidence")


class FileKey(NamedTuple):
    """A listed input file: its path (as Spark's ``path`` column has it), size and
    modification time in epoch milliseconds."""

    path: str
    length: int
    mtime_ms: int


class ErrorRecord(NamedTuple):
    """One ``errors/`` row known on the driver (too large, not scanned, kept by resume)."""

    path: str
    label: str | None
    length: int
    mtime_ms: int
    error: str
    detail: str


def label_of(path: str, root: str) -> str | None:
    """The label of a file: its immediate parent folder's name, None directly under
    ``root``. The driver-side twin of :func:`featurize.inputs.listing.label_column`.

    >>> label_of("file:/data/cats/1.jpg", "file:/data"), label_of("s3://b/in/1.jpg", "s3://b/in/")
    ('cats', None)
    """
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    return None if parent == root.rstrip("/") else parent.rsplit("/", 1)[-1]


def join(base: str, *parts: str) -> str:
    """Join URI segments with single slashes.

    >>> join("s3://b/runs/x/", "models", "pca")
    's3://b/runs/x/models/pca'
    """
    out = base.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


def local_path(path: str) -> str:
    """A ``file:`` path as the local file system names it (Spark's ``path`` column).

    >>> local_path("file:/data/photos/cat/1.jpg")
    '/data/photos/cat/1.jpg'
    """
    return path[len("file:"):] if path.startswith("file:") else path


class _At:
    """A path inside a run directory, read as an attribute of a :class:`RunDir`."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def __get__(self, run_dir: "RunDir | None", owner: type) -> Any:
        return self if run_dir is None else run_dir.at(*self.parts)


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory (or of a predict job's output folder).

    >>> RunDir("runs/local").pca_model
    'runs/local/models/pca'
    """

    uri: str

    def at(self, *parts: str) -> str:
        return join(self.uri, *parts)

    manifest = _At(MANIFEST)
    metrics = _At(METRICS)
    features = _At("features")
    #: Where a resume that drops rows writes kept + new features before swapping.
    features_next = _At("_features_next")
    errors = _At("errors")
    #: Where a resume writes errors/ before swapping it in: the old one is read until then.
    errors_next = _At("_errors_next")
    pca = _At("pca")
    pca_model = _At("models", "pca")
    classifier = _At("models", "classifier")
    #: The same chain in NumPy (featurize/classifier/export.py), for one photo without Spark.
    classifier_export = _At("models", "classifier.npz")
    test_predictions = _At("test_predictions")
    clusters = _At("clusters")
    clusters_summary = _At("clusters.json")
    #: The similar-images index (featurize/search/): the faiss file, its rows, its record.
    index = _At("index")
    index_file = _At("index", "index.faiss")
    index_rows = _At("index", "rows")
    index_summary = _At("index", "index.json")
    neighbours = _At("neighbours")
    duplicates = _At("duplicates")
    predictions = _At("predictions")
    report = _At("report")

    @staticmethod
    def committed(table: str) -> str:
        """Hadoop's mark of a table folder whose write job committed."""
        return join(table, "_SUCCESS")

    @staticmethod
    def uncommitted(table: str) -> str:
        """Where a table's write keeps task attempts until they commit; a write stopped
        partway leaves them behind, and they are not rows."""
        return join(table, "_temporary")

    #: Files whose presence says a run (or its classifier) finished: deleted first when
    #: a run directory is replaced, written last.
    MARKERS = (MANIFEST, METRICS)

    #: The ``outputs`` section of each job's manifest (folders relative to the run).
    FEATURIZE_OUTPUTS = {"features": "features/", "errors": "errors/", "pca": "pca/",
                         "pca_model": "models/pca/"}
    PREDICT_OUTPUTS = {"predictions": "predictions/", "errors": "errors/"}
