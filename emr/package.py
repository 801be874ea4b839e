"""Build ``dist/``: everything a cluster needs, laid out as it is uploaded.

::

    dist/featurize.zip                      the featurize package, for --py-files
    dist/jobs/<job>.py                      the spark-submit entry points
    dist/bootstrap/install-python-deps.sh   the bootstrap action
    dist/bootstrap/requirements.txt         what it installs ...
    dist/bootstrap/constraints.txt          ... at the project's own pins (same file)

The zip holds pure Python only; the native dependencies (TensorFlow, pyarrow, ...) are
installed on every node by the bootstrap action, for the Python that Spark uses. The zip
is deterministic (sorted entries, fixed timestamps), so an unchanged tree uploads the
same bytes.
"""
from __future__ import annotations

import logging
import os
import shutil
import zipfile
from pathlib import Path

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
#: Job names (as `submit --steps` takes them) -> entry point file.
JOB_FILES = {"featurize": "featurize_images.py", "train": "train_classifier.py",
             "predict": "predict_images.py"}
JOBS = tuple(JOB_FILES.values())
BOOTSTRAP_SCRIPT = "install-python-deps.sh"
CODE_ZIP = "featurize.zip"
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _zip_package(package_dir: Path, dest: Path) -> int:
    files = sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(str(path.relative_to(package_dir.parent)), _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return len(files)


def artifacts(dist: str | os.PathLike) -> list[str]:
    """Paths (relative to ``dist``, ``/``-separated) of everything ``build`` writes."""
    return ([CODE_ZIP] + [f"jobs/{j}" for j in JOBS]
            + [f"bootstrap/{BOOTSTRAP_SCRIPT}", "bootstrap/requirements.txt",
               "bootstrap/constraints.txt"])


def build(dist: str | os.PathLike = "dist", repo: Path = REPO) -> list[str]:
    """Write ``dist/`` afresh from ``repo``; return the relative paths written."""
    dist = Path(dist)
    if dist.exists():
        shutil.rmtree(dist)
    (dist / "jobs").mkdir(parents=True)
    (dist / "bootstrap").mkdir()
    n = _zip_package(repo / "featurize", dist / CODE_ZIP)
    for job in JOBS:
        shutil.copyfile(repo / "jobs" / job, dist / "jobs" / job)
    shutil.copyfile(repo / "bootstrap" / BOOTSTRAP_SCRIPT, dist / "bootstrap" / BOOTSTRAP_SCRIPT)
    shutil.copyfile(repo / "bootstrap" / "requirements.txt", dist / "bootstrap" / "requirements.txt")
    # The one pin set of the project: the nodes install exactly what the tests ran on.
    shutil.copyfile(repo / "constraints.txt", dist / "bootstrap" / "constraints.txt")
    written = artifacts(dist)
    missing = [p for p in written if not (dist / p).is_file()]
    if missing:  # a bug in this module, not a user error
        raise RuntimeError(f"package: {missing} were not written")
    logger.info("packaged %d modules into %s, %d files in %s", n, dist / CODE_ZIP,
                len(written), dist)
    return written
