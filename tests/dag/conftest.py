"""The DAG tests' Airflow: a throw-away AIRFLOW_HOME with a SQLite metadata database.

Set before Airflow is imported (it reads its configuration at import); the test modules
import Airflow inside fixtures, after this file has run.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_HOME = tempfile.mkdtemp(prefix="airflow-home-")
os.environ.update({
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    # an AWS connection with nothing in it: boto3's own chain (moto's variables) applies
    "AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws"}',
    # steps are polled every second, not every minute, and a stuck test gives up soon
    "FEATURIZE_IMAGES_POLL_SECONDS": "1",
    "FEATURIZE_IMAGES_STEP_TIMEOUT_SECONDS": "120",
})
os.environ.pop("FEATURIZE_IMAGES_SCHEDULE", None)


@pytest.fixture(scope="session")
def airflow_db():
    """``airflow db migrate`` into the throw-away home (SQLite), once."""
    airflow = Path(sys.executable).parent / "airflow"
    proc = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    yield Path(_HOME)
    shutil.rmtree(_HOME, ignore_errors=True)
