"""What every peer shares around its own pipeline: the command line, and the end (a
scikit-learn StandardScaler + PCA of the features, both written as parquet, one JSON
line). Imports nothing from the project, so it runs in the peers' virtualenvs."""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np


def arguments() -> argparse.Namespace:
    """``--input`` (a folder of class folders of JPEGs), ``--output``, ``--k``."""
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--k", type=int, required=True, help="PCA components")
    return p.parse_args()


def finish(paths: list[str], features: np.ndarray, args: argparse.Namespace, started: float,
           **versions: Any) -> None:
    """StandardScaler + PCA(k) fitted on ``features``; features and projections written
    to ``--output``; one JSON line (images, seconds since ``started``, versions)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    features = features.astype(np.float32)
    projected = PCA(n_components=args.k).fit_transform(
        StandardScaler().fit_transform(features.astype(np.float64))).astype(np.float32)
    os.makedirs(args.output, exist_ok=True)
    column = pa.array(paths)
    pq.write_table(pa.table({"path": column, "features": pa.array(list(features))}),
                   os.path.join(args.output, "features.parquet"))
    pq.write_table(pa.table({"path": column, "pca": pa.array(list(projected))}),
                   os.path.join(args.output, "pca.parquet"))
    print(json.dumps({"images": len(features),
                      "seconds_in_process": time.perf_counter() - started, **versions}))
