"""The project's one cache folder: ``$FEATURIZE_CACHE``, else
``$XDG_CACHE_HOME/featurize-images`` (``~/.cache/featurize-images``).

What lives there, outside git, each safe to delete when no job is running:

- ``ir/``: OpenVINO IR converted from the weights (:mod:`featurize.model.engines.openvino_engine`);
- ``staging/``: runs written locally for an ``s3://`` output without a Hadoop S3
  filesystem, until their upload succeeds (:mod:`featurize.storage.output`);
- ``jars/``, ``launcher/``, ``node-venv/``: the EMR rehearsal's (:mod:`emr.rehearsal`).
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("FEATURIZE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "featurize-images")
    return Path(base)
