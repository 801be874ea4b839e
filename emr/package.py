"""Build ``dist/``: everything a cluster needs, laid out as it is uploaded.

::

    dist/featurize.zip                      the featurize package, for --py-files
    dist/jobs/<job>.py                      the spark-submit entry points
    dist/bootstrap/install-python-deps.sh   the bootstrap action
    dist/bootstrap/requirements.txt         what it installs ...
    dist/bootstrap/constraints.txt          ... at the project's own pins (same file)
    dist/bootstrap/wheels.sha256            sha256 of every wheel, checked on the node
    dist/bootstrap/requirements-hashed.txt  every wheel as name==version --hash=sha256:...,
                                            what pip installs with --require-hashes
    dist/wheels/*.whl                       every pinned dependency as a binary wheel

The zip holds pure Python only; the native dependencies (TensorFlow, pyarrow, ...) are
installed on every node by the bootstrap action, for the Python that Spark uses, from
the wheelhouse with ``pip --no-index``: the nodes need no PyPI, so a private subnet
without NAT works. The zip is deterministic (sorted entries, fixed timestamps), so an
unchanged tree uploads the same bytes.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from featurize.errors import CommandError

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
#: Job names (as `submit --steps` takes them) -> entry point file.
JOB_FILES = {"featurize": "featurize_images.py", "train": "train_classifier.py",
             "predict": "predict_images.py", "index": "index_features.py"}
JOBS = tuple(JOB_FILES.values())
BOOTSTRAP_SCRIPT = "install-python-deps.sh"
CODE_ZIP = "featurize.zip"
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
WHEELS = "wheels"
WHEEL_SUMS = "bootstrap/wheels.sha256"
HASHED_REQUIREMENTS = "bootstrap/requirements-hashed.txt"
#: The Airflow DAG (dags/) and the packaged DAG ``make dag-package`` writes under dist/.
DAG_FILE = "featurize_images_emr.py"
DAG_ZIP = "airflow/featurize_images_emr.zip"

#: The nodes' platform: CPython 3.11 on Amazon Linux 2023 (emr-7.x), glibc 2.34, x86_64.
#: pip's --platform matches one tag exactly (only manylinux2014 is widened to the older
#: manylinux2010/1), so every glibc from 2.34 down is listed: the pinned wheels are tagged
#: manylinux_2_17 (numpy, h5py), _2_27 (tensorflow-cpu), _2_28 (pyarrow, pandas) and
#: manylinux2010 (libclang); pure-Python ones are py3-none-any.
PYTHON_VERSION = "3.11"
PLATFORMS = tuple(f"manylinux_2_{m}_x86_64" for m in range(34, 4, -1)) + (
    "manylinux2014_x86_64",)
#: Installed from the wheelhouse too, before the requirements: the venv's own pip is
#: whatever the OS package bundles.
TOOLS = ("pip", "setuptools", "wheel")


def _modules(package_dir: Path) -> list[tuple[Path, str]]:
    """A package's modules as ``(file, name in the zip)``, the package folder at the root."""
    return [(p, str(p.relative_to(package_dir.parent))) for p in sorted(package_dir.rglob("*.py"))
            if "__pycache__" not in p.parts]


def _zip(files: list[tuple[Path, str]], dest: Path) -> int:
    """A reproducible zip (fixed times and modes) of ``(file, name in the zip)``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, name in files:
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return len(files)


def _zip_package(package_dir: Path, dest: Path) -> int:
    return _zip(_modules(package_dir), dest)


def dag_bundle(dist: str | os.PathLike = "dist", repo: Path = REPO) -> Path:
    """``dist/airflow/featurize_images_emr.zip``: the Airflow DAG at the zip's root beside
    the ``emr`` and ``featurize`` packages it imports (Airflow's packaged-DAG layout: the
    zip goes into the DAGs folder as it is, and Airflow puts it on ``sys.path``)."""
    dest = Path(dist) / DAG_ZIP
    files = [(repo / "dags" / DAG_FILE, DAG_FILE),
             *_modules(repo / "emr"), *_modules(repo / "featurize")]
    n = _zip(files, dest)
    logger.info("packaged the DAG and %d modules into %s", n - 1, dest)
    return dest


def artifacts(dist: str | os.PathLike) -> list[str]:
    """Paths (relative to ``dist``, ``/``-separated) of everything ``build`` writes, in
    upload order: the wheels that ``wheels.sha256`` lists, the code and the bootstrap
    files, and ``wheels.sha256`` last (in S3, its presence means the wheels are there)."""
    sums = Path(dist) / WHEEL_SUMS
    wheels = ([f"{WHEELS}/{line.split()[1]}" for line in sums.read_text().splitlines()
               if line.strip()] if sums.is_file() else [])
    return (wheels + [CODE_ZIP] + [f"jobs/{j}" for j in JOBS]
            + [f"bootstrap/{BOOTSTRAP_SCRIPT}", "bootstrap/requirements.txt",
               "bootstrap/constraints.txt", HASHED_REQUIREMENTS, WHEEL_SUMS])


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_wheels(repo: Path = REPO, cache: Path | None = None) -> Path:
    """Every pinned dependency (and pip, setuptools, wheel) as a wheel for the nodes'
    platform, in a cache folder keyed by the requirements, the pins and the platform
    (``build/wheelhouse/<key>/``; a second call with the same inputs downloads nothing).

    Raises
    ------
    CommandError
        pip could not resolve or download a wheel for every pin.
    """
    requirements, constraints = repo / "bootstrap/requirements.txt", repo / "constraints.txt"
    key = hashlib.sha256(requirements.read_bytes() + constraints.read_bytes()
                         + " ".join((PYTHON_VERSION,) + PLATFORMS).encode()).hexdigest()[:16]
    dest = (cache or repo / "build" / "wheelhouse") / key
    done = dest / ".complete"
    if done.is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--implementation", "cp", "--python-version",
           PYTHON_VERSION, "--abi", "cp" + PYTHON_VERSION.replace(".", ""),
           *[arg for p in PLATFORMS for arg in ("--platform", p)],
           "-d", str(dest), *TOOLS, "-r", str(requirements), "-c", str(constraints)]
    logger.info("downloading the wheelhouse for CPython %s manylinux x86_64 into %s",
                PYTHON_VERSION, dest)
    # PIP_FIND_LINKS could offer wheels built for this machine instead of the nodes'
    env = {**os.environ, "PIP_FIND_LINKS": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise CommandError(f"package: pip could not download the wheelhouse:\n"
                           f"{proc.stderr.strip()[-3000:]}")
    done.write_text("\n".join(sorted(p.name for p in dest.glob("*.whl"))) + "\n")
    return dest


def hashed_requirement(wheel_name: str, sha256: str) -> str:
    """One line of ``requirements-hashed.txt``: the wheel's project at its version, and
    the one file pip may install for it.

    >>> hashed_requirement("tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl",
    ...                    "ab" * 32)  # doctest: +ELLIPSIS
    'tensorflow-cpu==2.21.0 --hash=sha256:abab...'
    """
    name, version = wheel_name.split("-")[:2]  # PEP 427: '-' only separates fields
    return f"{name.lower().replace('_', '-')}=={version} --hash=sha256:{sha256}"


def _copy_wheels(source: Path, dist: Path) -> list[str]:
    """Link (or copy) the wheels into dist/wheels/; write their sha256 list (checked
    with sha256sum before anything is installed) and the same hashes as a requirements
    file (checked again by pip, which installs with --require-hashes)."""
    (dist / WHEELS).mkdir()
    lines, hashed = [], []
    for wheel in sorted(source.glob("*.whl")):
        target = dist / WHEELS / wheel.name
        try:
            os.link(wheel, target)
        except OSError:
            shutil.copyfile(wheel, target)
        digest = sha256_file(target)
        lines.append(f"{digest}  {wheel.name}")
        hashed.append(hashed_requirement(wheel.name, digest))
    (dist / HASHED_REQUIREMENTS).write_text(
        "# every wheel of the wheelhouse: pip install --require-hashes -r this file\n"
        + "\n".join(hashed) + "\n")
    (dist / WHEEL_SUMS).write_text("\n".join(lines) + "\n")
    return lines


def build(dist: str | os.PathLike = "dist", repo: Path = REPO,
          wheel_cache: Path | None = None) -> list[str]:
    """Write ``dist/`` afresh from ``repo``; return the relative paths written."""
    dist = Path(dist)
    wheels = download_wheels(repo, wheel_cache)
    if dist.exists():
        shutil.rmtree(dist)
    (dist / "jobs").mkdir(parents=True)
    (dist / "bootstrap").mkdir()
    _copy_wheels(wheels, dist)
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
