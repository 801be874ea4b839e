"""The scalar-iterator pandas UDF that turns image bytes into features.

:func:`featurize_batch` is the pure per-batch logic (testable with any callable in place
of the model); :func:`make_featurize_udf` wraps it in a Spark pandas UDF that gets its
model from the per-worker cache in :mod:`featurize.engines.worker`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from featurize.engines import WorkerSpec
from featurize.images import (
    DEFAULT_MAX_PIXELS, DEFAULT_PREPROCESSING, Preprocessing, try_preprocess,
)

#: Spark DDL of the UDF's result: features for good files, a reason for bad ones.
RESULT_DDL = "struct<features:array<float>,error:string,detail:string>"


def featurize_batch(
    contents: pd.Series,
    extract: Callable[[np.ndarray], np.ndarray],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
) -> pd.DataFrame:
    """Decode a batch of file contents and run the decodable ones through ``extract``.

    Parameters
    ----------
    contents : pandas.Series
        ``bytes`` per row.
    extract : callable
        ``float32[n,224,224,3] -> float32[n,1280]``.
    max_pixels : int
        Pixel cap passed to the decoder.
    preprocessing : Preprocessing
        Crop or squash, and the input size.

    Returns
    -------
    pandas.DataFrame
        Columns ``features`` (array or None), ``error`` and ``detail`` (None for good
        rows), one row per input row, in input order.
    """
    n = len(contents)
    features: list[Any] = [None] * n
    errors: list[str | None] = [None] * n
    details: list[str | None] = [None] * n
    good_idx: list[int] = []
    arrays: list[np.ndarray] = []
    for i, data in enumerate(contents):
        result = try_preprocess(data, max_pixels=max_pixels, preprocessing=preprocessing)
        if result.array is None:
            errors[i], details[i] = result.reason, result.detail
        else:
            good_idx.append(i)
            arrays.append(result.array)
    if arrays:
        feats = extract(np.stack(arrays))
        for j, i in enumerate(good_idx):
            features[i] = feats[j]
    return pd.DataFrame({"features": features, "error": errors, "detail": details})


def make_featurize_udf(
    payload_broadcast: Any,
    spec: WorkerSpec,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    images_counter: Any = None,
    rows_counter: Any = None,
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
) -> Any:
    """Build the Spark UDF ``content -> struct<features, error, detail>``.

    Parameters
    ----------
    payload_broadcast : pyspark.Broadcast
        The engine's payload (IR bytes or weight arrays), read once per worker.
    spec : WorkerSpec
        Engine, precision, batch, threads, size and the payload's key; a new key makes
        workers reload.
    max_pixels : int
        Decoder pixel cap.
    images_counter : pyspark.Accumulator, optional
        Incremented by the number of images run through the model.
    rows_counter : pyspark.Accumulator, optional
        Incremented by the number of rows done, good or bad (the progress lines).
    preprocessing : Preprocessing
        Crop or squash, and the input size (the model is built at that size).
    """
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(RESULT_DDL)  # type: ignore[call-overload]
    def featurize_content(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        # Imported here so the closure refers to the module by name: its cache then
        # lives once per worker process, not once per task.
        from featurize.engines import worker

        extractor = worker.get_extractor(spec, lambda: payload_broadcast.value)
        for contents in batches:
            out = featurize_batch(contents, extractor, max_pixels=max_pixels,
                                  preprocessing=preprocessing)
            if images_counter is not None:
                images_counter.add(int(out["error"].isna().sum()))
            if rows_counter is not None:
                rows_counter.add(len(out))
            yield out

    return featurize_content
