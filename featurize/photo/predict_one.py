"""``python -m featurize.photo.predict_one --run RUN IMAGE [IMAGE ...] [--json] [--top K]
[--similar N]``.

A class and a confidence for a few photos, in this process: no Spark, no JVM. The run's
weights and engine make the CNN features (decoded with the run's preprocessing, as the
job does) and ``RUN/models/classifier.npz`` (featurize/classifier/export.py) the probabilities, so
the answers are the predict job's. :class:`Predictor` loads everything once and answers
many times; the web app (``make serve``) holds one.

Exit status: 0 every image answered, 1 some image was unreadable (its line says why, with
the job's error reasons), 2 the run cannot be used (not trained, stale, other weights).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from featurize.classifier.export import ExportedClassifier
from featurize.config import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS
from featurize.errors import ConfigError, FeaturizeError
from featurize.model.preprocess import try_preprocess
from featurize.model.run_checks import (
    check_classifier, check_weights, run_preprocessing, run_weights_spec,
)
from featurize.rundir import RunDir
from featurize.search import index as ix

logger = logging.getLogger(__name__)

#: Long side of a similar photo's thumbnail on the page.
THUMBNAIL_PX = 160


def _read_json(path: Path, missing: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(missing)
    return json.loads(path.read_text())


class Predictor:
    """One run's chain, loaded once: preprocessing, engine (compiled), classifier.

    Thread-safe: :meth:`predict` decodes in the caller's thread and serialises only the
    model call (one compiled model, every core).

    Parameters
    ----------
    run : str
        A local run directory that ``make train`` has trained.
    calibrate : bool
        Apply the run's temperature (as the predict job does unless ``--no-calibrate``).
    threads : int, optional
        Inference threads (default: every core).

    Raises
    ------
    ConfigError
        The run did not finish, has no exported classifier, or its classifier is stale
        or was trained on other features; the weights now resolve differently.
    """

    def __init__(self, run: str, calibrate: bool = True, threads: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, similar: bool = False) -> None:
        from featurize.config import check_engine
        from featurize.model.engines import prepare_engine
        from featurize.model.engines.worker import _new_extractor
        from featurize.model.weights import resolve_weights

        rd = RunDir(run)
        self._model_lock = threading.Lock()
        self.run, self.max_pixels, self.max_file_bytes = run, max_pixels, max_file_bytes
        self.manifest = manifest = _read_json(Path(rd.manifest), f"{run} has no "
                                                                 f"manifest.json: not a "
                                                                 f"featurize run")
        if manifest.get("status") != "complete":
            raise ConfigError(f"{run}: the featurize run did not complete "
                              f"(status {manifest.get('status')!r}); rerun it.")
        metrics = _read_json(Path(rd.metrics), f"{run} has no trained classifier "
                                               f"(metrics.json missing): make train RUN={run}")
        export = Path(rd.classifier_export)
        if not export.is_file():
            raise ConfigError(f"{run} has no models/classifier.npz (trained before the "
                              f"export existed): make train RUN={run}")
        try:
            self.classifier = ExportedClassifier.from_bytes(export.read_bytes())
        except ValueError as exc:
            raise ConfigError(f"{export}: {exc}") from exc
        if (manifest.get("pca") or {}).get("model_id") != self.classifier.pca_model_id:
            raise ConfigError(f"the classifier in {run} was trained on another PCA model "
                              f"than the run's (re-featurized after training); retrain "
                              f"it: make train RUN={run}")
        self.preprocessing = run_preprocessing(manifest)
        weights = resolve_weights(run_weights_spec(manifest),
                                  seed=manifest["weights"].get("seed") or 0)
        check_classifier(metrics, self.classifier.pca_model_id)  # before any conversion
        recorded = manifest.get("engine") or {"name": "tensorflow", "precision": "f32"}
        check_engine(recorded["name"], recorded["precision"])
        # The engine first: an OpenVINO IR cache hit tells the weights their arrays'
        # digest, so the check below needs no TensorFlow (start-up ~1 s instead of ~10).
        engine = prepare_engine(recorded["name"], recorded["precision"], weights,
                                self.preprocessing.size)
        check_weights(manifest, weights)
        spec_ = engine.worker_spec(1, threads or os.cpu_count() or 1, self.preprocessing.size)
        self._extractor = _new_extractor(spec_)
        self._extractor.load(engine.payload, spec_.key)
        self.engine = engine.to_manifest()
        self.temperature = self.classifier.temperature if calibrate else 1.0
        self.similar = SimilarImages(run, self.classifier.pca_model_id) if similar else None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    def predict(self, data: bytes, path: str, top: int = 5, similar: int = 0) -> dict[str, Any]:
        """One image's answer: ``path, label, confidence, top`` (the ``top`` best labels
        with their probabilities) and, with ``similar`` > 0 (and the run's index loaded),
        ``similar``: the run's most similar images (``path, similarity``); or ``path,
        error, detail`` with the job's reason."""
        if self.max_file_bytes and len(data) > self.max_file_bytes:
            return {"path": path, "error": "too_large",
                    "detail": f"{len(data)} bytes, more than {self.max_file_bytes}"}
        decoded = try_preprocess(data, self.max_pixels, self.preprocessing)
        if decoded.array is None:
            return {"path": path, "error": decoded.reason, "detail": decoded.detail}
        with self._model_lock:
            features = self._extractor(decoded.array[None])
        p = self.classifier.probabilities(features, self.temperature)[0]
        order = p.argsort()[::-1]
        answer = {"path": path, "label": self.labels[order[0]],
                  "confidence": float(p[order[0]]),
                  "top": [{"label": self.labels[i], "probability": float(p[i])}
                          for i in order[:max(1, top)]]}
        if similar and self.similar is not None:
            answer["similar"] = self.similar.search(self.classifier.pca_features(features),
                                                    similar)
        return answer


class SimilarImages:
    """A run's similar-images index (``make index``), loaded for one photo's search: the
    faiss file memory-mapped, the row → path list in memory.

    Raises
    ------
    ConfigError
        The run has no index, or its index was built on another PCA model.
    """

    def __init__(self, run: str, pca_model_id: str) -> None:
        import pyarrow.parquet as pq

        rd = RunDir(run)
        record = _read_json(Path(rd.index_summary), f"{run} has no similar-images index "
                                                    f"(index/index.json missing): make index "
                                                    f"RUN={run}")
        if record.get("pca_model_id") != pca_model_id:
            raise ConfigError(f"the index in {run} was built on another PCA model than the "
                              f"classifier's: make index RUN={run}")
        self.index = ix.load(str(Path(rd.index_file)), record["index"]["nprobe"])
        rows = pq.read_table(rd.index_rows, columns=["row", "path"]).sort_by("row")
        self.paths = rows.column("path").to_pylist()

    def search(self, pca_features: Any, n: int) -> list[dict[str, Any]]:
        sims, ids = ix.search(self.index, pca_features, n)
        return [{"path": self.paths[i], "similarity": float(s), "row": int(i)}
                for s, i in zip(sims[0], ids[0]) if i >= 0]

    def thumbnail(self, row: int, size: int = THUMBNAIL_PX) -> bytes | None:
        """The indexed image of ``row``, read as the job reads it (a local path, or
        ``s3://`` through boto3) and downscaled to ``size`` px on its long side, as JPEG;
        None for a row the index does not have or an image gone unreadable. Only rows
        name images: no path from a client ever reaches a read."""
        if not 0 <= row < len(self.paths):
            return None
        return thumbnail_of(self.paths[row], size)


def thumbnail_of(uri: str, size: int = THUMBNAIL_PX) -> bytes | None:
    """A run's input, downscaled to ``size`` px (JPEG); None if it cannot be read now."""
    import io

    from featurize.model.decode import ImageDecodeError, opened, upright
    from featurize.rundir import local_path
    from featurize.storage import s3

    try:
        if s3.is_s3(uri):
            data = s3.read_bytes(s3.client(), uri)
        else:
            data = Path(local_path(uri)).read_bytes()
        img = upright(opened(data, DEFAULT_MAX_PIXELS))
    except (OSError, ImageDecodeError, FeaturizeError):
        return None
    img.thumbnail((size, size))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def _line(answer: dict[str, Any]) -> str:
    if "error" in answer:
        return f"{answer['path']}  error:{answer['error']}  {answer['detail']}"
    return f"{answer['path']}  {answer['label']}  {answer['confidence']:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m featurize.photo.predict_one",
                                     description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a trained run directory (local)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line: path, label, confidence, top")
    parser.add_argument("--top", type=int, default=5, help="labels in `top` (default 5)")
    parser.add_argument("--similar", type=int, default=0, metavar="N",
                        help="also the run's N most similar images (needs make index RUN=)")
    parser.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                        help="the regression's own probabilities (temperature 1)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        predictor = Predictor(args.run, calibrate=args.calibrate, similar=args.similar > 0)
    except FeaturizeError as exc:
        print(f"predict_one: {exc}", file=sys.stderr)
        return exc.exit_status
    failed = 0
    for image in args.images:
        try:
            data = Path(image).read_bytes()
        except OSError as exc:
            answer = {"path": image, "error": "not_read", "detail": str(exc)}
        else:
            answer = predictor.predict(data, image, args.top, args.similar)
        failed += "error" in answer
        print(json.dumps(answer) if args.json else _line(answer), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
