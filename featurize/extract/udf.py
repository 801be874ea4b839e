"""The scalar-iterator pandas UDF that turns image bytes into features.

:func:`featurize_batch` is the pure per-batch logic (testable with any callable in place
of the model): :func:`decode_batch` then :func:`extract_batch`. :func:`make_featurize_udf`
wraps them in a Spark pandas UDF that gets its model from the per-worker cache in
:mod:`featurize.model.engines.worker`, and can decode the next batch while the model runs the
current one (:func:`overlapped`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from featurize.config import DEFAULT_MAX_PIXELS
from featurize.model.engines import WorkerSpec
from featurize.model.preprocess import DEFAULT_PREPROCESSING, Preprocessing, try_preprocess

#: Spark DDL of the UDF's result: features for good files, a reason for bad ones.
RESULT_DDL = "struct<features:array<float>,error:string,detail:string>"


@dataclass
class Decoded:
    """One batch after decoding: the network inputs of the good rows and the reasons of
    the bad ones (:func:`decode_batch`), waiting for the model (:func:`extract_batch`)."""

    n: int
    good_idx: list[int]
    arrays: np.ndarray | None
    errors: list[str | None]
    details: list[str | None]


def decode_batch(contents: pd.Series, max_pixels: int = DEFAULT_MAX_PIXELS,
                 preprocessing: Preprocessing = DEFAULT_PREPROCESSING) -> Decoded:
    """Decode a batch of file contents (``bytes`` per row) into network inputs."""
    n = len(contents)
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
    return Decoded(n, good_idx, np.stack(arrays) if arrays else None, errors, details)


def extract_batch(decoded: Decoded,
                  extract: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
    """Run the decodable rows of a batch through ``extract``: one row out per row in,
    in input order, columns ``features`` (array or None), ``error`` and ``detail``."""
    features: list[Any] = [None] * decoded.n
    if decoded.arrays is not None:
        feats = extract(decoded.arrays)
        for j, i in enumerate(decoded.good_idx):
            features[i] = feats[j]
    return pd.DataFrame({"features": features, "error": decoded.errors,
                         "detail": decoded.details})


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
    return extract_batch(decode_batch(contents, max_pixels, preprocessing), extract)


def overlapped(batches: Iterator[pd.Series],
               decode: Callable[[pd.Series], Decoded],
               extract: Callable[[Decoded], pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """``extract(decode(b))`` for each batch, in order, with the next batch decoded on a
    second thread while the model runs the current one.

    Pillow releases the GIL while it decodes and resamples, and both engines release it
    while they infer, so the two overlap; at most two decoded batches are held. An
    exception in either is raised here, in the task, as without the thread.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="featurize-decode") as pool:
        pending = None
        for contents in batches:
            upcoming = pool.submit(decode, contents)
            if pending is not None:
                yield extract(pending.result())
            pending = upcoming
        if pending is not None:
            yield extract(pending.result())


def make_featurize_udf(
    payload_broadcast: Any,
    spec: WorkerSpec,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    images_counter: Any = None,
    rows_counter: Any = None,
    preprocessing: Preprocessing = DEFAULT_PREPROCESSING,
    decode_ahead: bool = False,
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
    decode_ahead : bool
        Decode the next batch on a second thread while the model runs the current one
        (:func:`overlapped`); False runs them in turn.
    """
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(RESULT_DDL)  # type: ignore[call-overload]
    def featurize_content(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        # Imported here so the closure refers to the module by name: its cache then
        # lives once per worker process, not once per task.
        from featurize.model.engines import worker

        extractor = worker.get_extractor(spec, lambda: payload_broadcast.value)

        def decode(contents: pd.Series) -> Decoded:
            return decode_batch(contents, max_pixels, preprocessing)

        def extract(decoded: Decoded) -> pd.DataFrame:
            out = extract_batch(decoded, extractor)
            if images_counter is not None:
                images_counter.add(len(decoded.good_idx))
            if rows_counter is not None:
                rows_counter.add(decoded.n)
            return out

        if decode_ahead:
            yield from overlapped(batches, decode, extract)
        else:
            for contents in batches:
                yield extract(decode(contents))

    return featurize_content
