"""``python -m featurize.photo.serve --run RUN [--port 8000]`` (``make serve``): one photo at a
time over HTTP.

One :class:`~featurize.photo.predict_one.Predictor` is loaded at start and shared by every
request (it is thread-safe: decoding runs in parallel, the model call is serialised).
Served by waitress, a pure-Python production WSGI server, with ``--threads`` workers.

Routes
------
``GET /``
    The page (``featurize/photo/web/index.html``): drop or pick a photo, see it, its label, the
    confidence and the top 5 as bars.
``POST /api/predict``
    Multipart field ``image`` (optional query ``top``, default 5, and ``similar``, default
    ``--similar``). 200 with the JSON of ``predict_one --json`` (``path`` is the uploaded
    file's name), with ``similar`` [{path, similarity, row, thumbnail}] when the run has an
    index (``make index``). A file that is no image
    gets 422 and ``{path, error, detail}`` with the job's reason (``not_an_image``,
    ``truncated``, ``empty``, ``decode_error``); an image over ``--max-pixels`` gets 413
    (``too_many_pixels``), a body over ``--max-upload-bytes`` 413 (``too_large``); no
    ``image`` field, or a ``top`` that is not a positive integer, 400 (``no_image``,
    ``bad_request``). waitress itself refuses bodies over twice the upload limit, with a
    plain-text 413, before they are read.
``GET /api/thumbnail/<row>``
    With ``--similar N`` and the run's index: the indexed image of that row, downscaled to
    160 px (JPEG), read as the job reads its input (local or ``s3://``). Only a row
    number names an image, never a path from the client: 404 for any other.
``GET /api/health``
    ``{"status": "ok", "run", "run_id", "labels", "label_names", "engine", "temperature"}``;
    ``run`` is the run directory's name, ``run_id`` its PCA model id (the one a trained
    classifier is bound to).

Memory: a decoded photo is up to ``--max-pixels`` × 3 bytes (120 MB at the default), so
at most one decode per core runs at a time, whatever ``--threads`` says.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

from featurize.config import DEFAULT_MAX_PIXELS
from featurize.errors import FeaturizeError
from featurize.photo.predict_one import Predictor
from featurize.rundir import RunDir

logger = logging.getLogger(__name__)

#: Uploads larger than this get 413. A phone photo is 2-12 MB.
DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
#: Room for the multipart envelope around the file itself.
_MULTIPART_SLACK = 64 * 1024

#: Similar photos one answer may ask for.
MAX_SIMILAR = 50
#: HTTP status of each decode failure: the body is the problem, not the request's form.
_STATUS = {"too_large": 413, "too_many_pixels": 413}


def create_app(predictor: Predictor, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               default_similar: int = 0) -> Any:
    """The Flask app over ``predictor`` (exposed for tests and for other WSGI servers)."""
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes + _MULTIPART_SLACK
    page = resources.files("featurize.photo.web").joinpath("index.html").read_text("utf-8")
    manifest = predictor.manifest
    decode_slots = threading.BoundedSemaphore(os.cpu_count() or 1)

    @app.get("/")
    def index() -> Any:
        return page, 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/api/health")
    def health() -> Any:
        return jsonify(status="ok", run=os.path.basename(os.path.normpath(predictor.run)),
                       run_id=(manifest.get("pca") or {}).get("model_id"),
                       labels=len(predictor.labels), label_names=list(predictor.labels),
                       engine={k: predictor.engine.get(k)
                               for k in ("name", "precision", "version", "ir_sha256")},
                       temperature=predictor.temperature)

    @app.post("/api/predict")
    def predict() -> Any:
        upload = request.files.get("image")
        if upload is None:
            return jsonify(path=None, error="no_image",
                           detail="POST the photo as the multipart form field `image`"), 400
        top = request.args.get("top", "5")
        similar = request.args.get("similar", str(default_similar))
        if not top.isdigit() or int(top) < 1 or not similar.isdigit():
            return jsonify(path=upload.filename, error="bad_request",
                           detail="`top` must be a positive integer, `similar` 0 or more"), 400
        # Flask has capped the body; the Predictor's own limit (the job's too_large) is
        # --max-upload-bytes for the file itself
        data = upload.read()
        name = upload.filename or "upload"
        started = time.perf_counter()
        with decode_slots:
            answer = predictor.predict(data, name, int(top), min(int(similar), MAX_SIMILAR))
        ms = 1000 * (time.perf_counter() - started)
        if "error" in answer:
            logger.info("%s: %s (%.0f ms)", name, answer["error"], ms)
            return jsonify(answer), _STATUS.get(answer["error"], 422)
        logger.info("%s: %s %.3f (%.0f ms)", name, answer["label"], answer["confidence"], ms)
        for s in answer.get("similar", []):
            s["thumbnail"] = f"api/thumbnail/{s['row']}"
        return jsonify(answer)

    @app.get("/api/thumbnail/<int:row>")
    def thumbnail(row: int) -> Any:
        data = predictor.similar.thumbnail(row) if predictor.similar is not None else None
        if data is None:
            return jsonify(path=None, error="not_found", detail=f"no indexed image {row}"), 404
        return data, 200, {"Content-Type": "image/jpeg", "Cache-Control": "max-age=3600"}

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: HTTPException) -> Any:
        return jsonify(path=None, error="too_large",
                       detail=f"the upload is more than {max_upload_bytes} bytes"), 413

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return jsonify(path=None, error="http_" + str(exc.code), detail=exc.description), exc.code

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m featurize.photo.serve",
                                     description="A web page and a JSON API answering one "
                                                 "photo at a time with RUN's classifier.")
    parser.add_argument("--run", required=True, help="a trained run directory (local)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; "
                             "0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8000, help="default 8000; 0 = any free port")
    parser.add_argument("--threads", type=int, default=8, help="request threads (default 8)")
    parser.add_argument("--max-upload-bytes", type=int, default=DEFAULT_MAX_UPLOAD_BYTES,
                        help=f"larger uploads get 413 (default {DEFAULT_MAX_UPLOAD_BYTES})")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"larger images get 413 too_many_pixels "
                             f"(default {DEFAULT_MAX_PIXELS})")
    parser.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                        help="the regression's own probabilities (temperature 1)")
    parser.add_argument("--similar", type=int, default=6, metavar="N",
                        help="the run's N most similar photos under each answer, when it has "
                             "an index (make index RUN=; default 6, 0: off)")
    args = parser.parse_args(argv)
    if args.max_upload_bytes < 1 or args.max_pixels < 1 or args.threads < 1:
        parser.error("--max-upload-bytes, --max-pixels and --threads must be at least 1")
    if not 0 <= args.similar <= MAX_SIMILAR:
        parser.error(f"--similar must be 0 to {MAX_SIMILAR}")
    similar = args.similar > 0 and os.path.isfile(RunDir(args.run).index_summary)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" noise
    try:
        predictor = Predictor(args.run, calibrate=args.calibrate, max_pixels=args.max_pixels,
                              max_file_bytes=args.max_upload_bytes, similar=similar)
    except FeaturizeError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return exc.exit_status
    from waitress import create_server

    # waitress buffers a whole body before Flask sees it: cap it (Flask's own limit, just
    # above --max-upload-bytes, answers the JSON 413 for anything between the two)
    if args.similar and not similar:
        logger.info("no index in %s: no similar photos (make index RUN=%s)", args.run, args.run)
    server = create_server(create_app(predictor, args.max_upload_bytes,
                                      args.similar if similar else 0), host=args.host,
                           port=args.port, threads=args.threads,
                           max_request_body_size=2 * (args.max_upload_bytes
                                                      + _MULTIPART_SLACK))
    host, port = server.effective_host, server.effective_port
    print(f"serving {args.run} ({len(predictor.labels)} labels, engine "
          f"{predictor.engine.get('name')}) on http://{host}:{port}/  (Ctrl-C stops)",
          flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
