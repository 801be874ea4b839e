"""The peak memory of each YARN container, measured as YARN's NodeManager measures it.

The NodeManager's physical-memory check sums the resident set of every process in a
container's process tree (``ProcfsBasedProcessTree``: the JVM, the Python daemon and each
forked worker, shared pages counted in each) and kills the container when the sum exceeds
its size. :class:`PeakMemory` samples the same sum from ``/proc`` every ``interval``
seconds, grouping processes by the ``CONTAINER_ID`` YARN puts in each container's
environment (children inherit it), and keeps the largest sum seen per container. A sample
can miss a peak shorter than the interval; YARN's own check runs every 3 s.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def container_rss_mb(proc: Path = Path("/proc")) -> dict[str, float]:
    """Resident MB per container id, summed over the processes that carry it."""
    totals: dict[str, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if b"CONTAINER_ID=" not in environ:
                continue
            container = next(v.split(b"=", 1)[1].decode() for v in environ.split(b"\0")
                             if v.startswith(b"CONTAINER_ID="))
            resident = int((entry / "statm").read_text().split()[1])
        except (OSError, StopIteration, ValueError, IndexError):
            continue  # a process that ended while it was read
        totals[container] = totals.get(container, 0.0) + resident * PAGE_MB
    return totals


class PeakMemory:
    """``with PeakMemory() as peaks:`` sample every container's memory in a thread;
    ``peaks.mb`` maps container id -> the largest resident MB seen."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.mb: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        for container, mb in container_rss_mb().items():
            if mb > self.mb.get(container, 0.0):
                self.mb[container] = mb

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
