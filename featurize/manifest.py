"""The run manifest: what ran, with what, on what, and how it went.

``manifest.json`` is written first with ``status: running`` and rewritten last with
``complete`` or ``failed`` (:meth:`featurize.storage.output.RunOutput.recorded`), so its
presence with ``status: complete`` is the mark of a finished run directory.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

FORMAT_VERSION = 1

_PACKAGES = ("pyspark", "openvino", "tensorflow-cpu", "tensorflow", "keras", "numpy",
             "pandas", "pyarrow", "pillow", "h5py", "featurize-images")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the numbers in a run."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StageTimer:
    """Wall time per named stage, in insertion order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 3)

    def total(self) -> float:
        return round(time.perf_counter() - self._start, 3)


def to_json(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n"


def command_line() -> list[str]:
    """The driver's argv. The job takes no secrets as flags and refuses URIs with
    credentials; any that reach here anyway are redacted."""
    from featurize.config import redact

    return [redact(arg) for arg in sys.argv]


def header(job: str, config: dict[str, Any], started: str) -> dict[str, Any]:
    """The keys every job's manifest starts with."""
    return {
        "format_version": FORMAT_VERSION,
        "job": job,
        "status": "running",
        "started_at": started,
        "finished_at": None,
        "config": config,
        "command": command_line(),
        "versions": library_versions(),
    }


def first_error_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception, for a failed manifest.

    Py4J errors carry whole JVM stack traces; those stay in the log.

    >>> first_error_line(ValueError("bad thing\\n  at line 2"))
    'ValueError: bad thing'
    """
    from featurize.config import redact

    first = (str(exc).strip().splitlines() or [""])[0][:1000]
    return f"{type(exc).__name__}: {redact(first)}"
