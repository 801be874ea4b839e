"""Progress lines while the featurize stage runs: images done / total, rate, ETA.

A daemon thread on the driver reads an accumulator every ``interval`` seconds (tasks
add their rows when they finish, so it moves a task at a time) and logs one line when
the count has moved (or every third interval when it has not), and a last one when the
stage ends, e.g.::

    featurize: 4,096/22,668 images (18%), 151.3 images/s, ETA 2m03s

It costs one accumulator read per interval on the driver and one ``add`` per batch on
the workers.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

logger = logging.getLogger("featurize.extract.progress")

#: Seconds between progress lines (``FEATURIZE_PROGRESS_SECONDS`` overrides it).
INTERVAL = 10.0


def interval() -> float:
    return float(os.environ.get("FEATURIZE_PROGRESS_SECONDS") or INTERVAL)


def format_eta(seconds: float) -> str:
    """``1h02m``, ``2m03s`` or ``45s``.

    >>> format_eta(45.2), format_eta(123), format_eta(3725)
    ('45s', '2m03s', '1h02m')
    """
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def progress_line(what: str, done: int, total: int, elapsed: float) -> str:
    """One progress line.

    >>> progress_line("featurize", 4096, 22668, 27.1)
    'featurize: 4,096/22,668 images (18%), 151.1 images/s, ETA 2m03s'
    >>> progress_line("featurize", 0, 10, 3.0)
    'featurize: 0/10 images (0%), 0.0 images/s, ETA ?'
    """
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = format_eta((total - done) / rate) if rate > 0 else "?"
    pct = 100 * done // total if total else 100
    return f"{what}: {done:,}/{total:,} images ({pct}%), {rate:.1f} images/s, ETA {eta}"


class Progress:
    """Log :func:`progress_line` every ``interval`` s while used as a context manager.

    Parameters
    ----------
    counter : pyspark.Accumulator
        Rows done so far (read on the driver).
    total : int
        Rows to do.
    """

    def __init__(self, what: str, counter: Any, total: int,
                 every: float | None = None) -> None:
        self.what, self.counter, self.total = what, counter, total
        self.interval = every if every is not None else interval()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="featurize-progress",
                                        daemon=True)
        self.lines = 0

    def _loop(self) -> None:
        start = printed = self._start
        last = 0
        while not self._stop.wait(self.interval):
            done, now = int(self.counter.value), time.monotonic()
            # A line when the count moved, and a "still here" line every 3 intervals.
            if done != last or now - printed >= 3 * self.interval:
                logger.info("%s", progress_line(self.what, done, self.total, now - start))
                self.lines += 1
                last, printed = done, now

    def __enter__(self) -> "Progress":
        self._start = time.monotonic()
        if self.total:
            self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.total and exc_type is None:  # the stage's last line, however short it was
            logger.info("%s", progress_line(self.what, int(self.counter.value), self.total,
                                            time.monotonic() - self._start))
            self.lines += 1
