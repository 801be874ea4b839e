"""The nodes' Python, built as on EMR: the bootstrap script, fetched from S3 and run with
the uploaded wheelhouse, no package index.

The venv lives in the cache (:func:`emr.rehearsal.jars.cache_dir`), one per wheelhouse
content (the sha256 of the bootstrap's pins and wheel list), so a second rehearsal with
the same wheels reuses it; the script itself then says "nothing to do".
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from emr import package
from emr.logs import tail
from emr.rehearsal import aws_shim, jars
from featurize.errors import CommandError

REPO = package.REPO


def venv_key(dist: Path) -> str:
    """sha256 of the pins and the wheel list: what the bootstrap installs."""
    h = hashlib.sha256()
    for name in ("requirements.txt", "constraints.txt", "wheels.sha256"):
        h.update((dist / "bootstrap" / name).read_bytes())
    return h.hexdigest()[:16]


def _shim_dir(tmp: str) -> str:
    shim = Path(tmp) / "aws"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m emr.rehearsal.aws_shim "$@"\n')
    shim.chmod(0o755)
    return tmp


def bootstrap(dist: Path, script_uri: str, args: list[str], env: dict[str, str],
              log=print) -> Path:
    """Fetch the bootstrap script from ``script_uri`` and run it as the bootstrap action
    would (``script ARGS…``), installing into the cached node venv; returns its python.

    Raises
    ------
    CommandError
        The script failed (its output's tail says why), as a cluster's bootstrap would.
    """
    venv = jars.cache_dir() / "node-venv" / venv_key(dist)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="featurize-bootstrap-") as tmp:
        script = Path(tmp) / package.BOOTSTRAP_SCRIPT
        run_env = {**env, "PATH": _shim_dir(tmp) + os.pathsep + env.get("PATH", ""),
                   "PYTHONPATH": str(REPO), "FEATURIZE_NODE_VENV": str(venv)}
        try:  # as EMR fetches a bootstrap action's script
            aws_shim.cp(script_uri, str(script), recursive=False)
        except (ClientError, BotoCoreError) as exc:
            raise CommandError(f"could not fetch {script_uri}: {exc}") from exc
        log(f"bootstrap: bash {package.BOOTSTRAP_SCRIPT} {' '.join(args)} "
            f"(node venv {venv})")
        proc = subprocess.run(["bash", str(script), *args], env=run_env, cwd=tmp,
                              capture_output=True, text=True, check=False)
        (venv.parent / f"{venv.name}.bootstrap.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise CommandError(f"the bootstrap action failed (exit {proc.returncode}); as "
                               f"on EMR, no step would run:\n"
                               f"{tail(proc.stdout + proc.stderr, 20)}")
        last = [line for line in proc.stdout.splitlines() if "featurize bootstrap" in line]
        if last:
            log(last[-1])
    return venv / "bin" / "python"
