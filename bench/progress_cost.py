"""What the progress lines cost, measured by their parts against a real run.

The progress lines (:mod:`featurize.extract.progress`) cost one accumulator ``add`` per batch in
the Python workers and, on the driver, one accumulator read and at most one log line per
interval. A whole-job A/B cannot resolve 1 % here (runs of the same code differ by up to 10 %), so
this times each part directly, the way it runs, and divides by what the run itself
spent::

    python -m bench.progress_cost --run build/bench/run     # a run of make bench

- worker: ``Accumulator.add`` on an accumulator as a worker holds it (deserialised, as
  ``pyspark.accumulators._deserialize_accumulator`` builds it), against the run's
  featurize seconds per batch per core (the value then travels once per task, in the
  task's result);
- driver: one poll (``value``, :func:`featurize.extract.progress.progress_line`, the log call)
  against the interval; the poll runs in its own thread, so this is CPU taken, not
  time added.

The last line is ``progress cost: X % of the featurize stage``: the larger of the two.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from pathlib import Path

from pyspark.accumulators import (
    INT_ACCUMULATOR_PARAM, Accumulator, _deserialize_accumulator,
)

from featurize.extract import progress


def per_call_seconds(fn, calls: int) -> float:
    """Median over 5 rounds of the time per call of ``fn``."""
    rounds = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - t) / calls)
    return sorted(rounds)[2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a featurize run directory (its manifest)")
    args = p.parse_args()
    manifest = json.loads((Path(args.run) / "manifest.json").read_text())
    featurize_s = manifest["timings_seconds"]["featurize"]
    images = manifest["counts"]["inputs"]
    batch = manifest["model"]["batch_size"]
    cores = manifest["spark"]["default_parallelism"]
    batches = -(-images // batch)
    per_batch = featurize_s * cores / batches  # seconds of one core per batch

    acc = _deserialize_accumulator(-1, 0, INT_ACCUMULATOR_PARAM)
    add = per_call_seconds(lambda: acc.add(batch), 200_000)

    log = logging.getLogger("bench.progress_cost")
    log.addHandler(logging.StreamHandler(io.StringIO()))  # formatted, written, not shown
    log.propagate = False
    log.setLevel(logging.INFO)
    driver_acc = Accumulator(-2, 4096, INT_ACCUMULATOR_PARAM)  # as sc.accumulator makes it
    start = time.monotonic()

    def poll() -> None:
        log.info("%s", progress.progress_line("featurize", int(driver_acc.value), images,
                                              time.monotonic() - start))

    poll_s = per_call_seconds(poll, 20_000)
    worker = add / per_batch
    driver = poll_s / progress.INTERVAL
    print(f"run: {images} images, featurize {featurize_s:.1f} s on {cores} cores, "
          f"{per_batch * 1e3:.1f} ms of a core per batch of {batch}")
    print(f"worker: {add * 1e6:.2f} us per add, one per batch: {100 * worker:.5f} %")
    print(f"driver: {poll_s * 1e6:.1f} us per poll, one per {progress.INTERVAL:.0f} s: "
          f"{100 * driver:.6f} % of a core")
    print(f"progress cost: {100 * max(worker, driver):.4f} % of the featurize stage")
    return 0


if __name__ == "__main__":
    sys.exit(main())
