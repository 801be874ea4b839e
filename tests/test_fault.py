"""Lost executors: the job on a Spark standalone cluster (one master, two one-core workers
on 127.0.0.1, started from the pyspark installation), one executor JVM killed with
SIGKILL mid-featurization. Every input must still land exactly once, with the features
of a clean run, and Spark must have recorded the loss (so a kill that landed too early or
too late cannot pass as a survived fault).

Select with ``-m fault``; CI runs it with the rest.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from featurize.config import FeaturizeConfig
from featurize.job import run
from tests.conftest import REPO
from tests.helpers import image_bytes, pattern_image, write

pytestmark = [pytest.mark.fault, pytest.mark.spark, pytest.mark.slow]

BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(path: Path, text: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path.name}: {text!r} x{count} not seen in {timeout} s:\n"
                         + (path.read_text(errors="replace")[-3000:] if path.exists() else ""))


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("standalone")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(tmp)}
    port = _port()
    url = f"spark://127.0.0.1:{port}"
    procs = []

    def start(args: list[str], log: Path) -> subprocess.Popen:
        fh = open(log, "w")
        p = subprocess.Popen([str(BIN / "spark-class"), *args], stdout=fh,
                             stderr=subprocess.STDOUT, env=env, start_new_session=True)
        procs.append(p)
        return p

    master_log = tmp / "master.log"
    start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
           str(port), "--webui-port", str(_port())], master_log)
    _wait_for(master_log, "I have been elected leader", 1, 120)
    workers = [start(["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
                      "--cores", "1", "--memory", "3g", "--webui-port", str(_port()),
                      "--work-dir", str(tmp / f"work{i}")], tmp / f"worker{i}.log")
               for i in range(2)]
    _wait_for(master_log, "Registering worker", 2, 120)
    yield url, [w.pid for w in workers], tmp
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=30)


def _executor_pids(worker_pids: list[int]) -> list[int]:
    """CoarseGrainedExecutorBackend JVMs whose parent is one of our workers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if b"CoarseGrainedExecutorBackend" in cmdline and ppid in worker_pids:
            found.append(int(entry.name))
    return found


def _failures(event_dir: Path) -> dict[str, int]:
    """Lost executors and failed task attempts, read from Spark's event log."""
    removed = failed = 0
    for log in event_dir.iterdir():
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event["Event"] == "SparkListenerExecutorRemoved":
                removed += 1
            elif event["Event"] == "SparkListenerTaskEnd" and \
                    event["Task End Reason"]["Reason"] != "Success":
                failed += 1
    return {"executors_removed": removed, "failed_task_attempts": failed}


def test_killed_executor_costs_a_retry_not_a_wrong_answer(spark, standalone, weights_spec,
                                                          tmp_path):
    url, worker_pids, cluster_dir = standalone
    images = tmp_path / "images"
    for c, label in enumerate(("x", "y", "z")):
        for i in range(30):
            write(images / label / f"{label}{i:03d}.jpg",
                  image_bytes(pattern_image(500 + 100 * c + i), "JPEG"))
    write(images / "x" / "broken.jpg", b"\xff\xd8\xff\xe0 cut off")
    events = tmp_path / "events"
    events.mkdir()
    out = tmp_path / "run"
    cmd = [str(BIN / "spark-submit"), "--master", url,
           "--conf", "spark.executor.cores=1", "--conf", "spark.cores.max=2",
           "--conf", "spark.executor.memory=1g", "--conf", "spark.ui.enabled=false",
           "--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir=file:{events}",
           str(REPO / "jobs" / "featurize_images.py"), "--input", str(images),
           "--output", str(out), "--weights", weights_spec, "--batch-size", "2",
           "--files-per-partition", "2", "--pca-k", "3"]
    log = tmp_path / "submit.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYSPARK_PYTHON": sys.executable},
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if list((out / "features").glob("part-*.parquet")):
                break
            time.sleep(0.05)
        executors = _executor_pids(worker_pids)
        assert proc.poll() is None and executors, \
            f"job ended before any kill (rc {proc.poll()}):\n{log.read_text()[-3000:]}"
        committed_before_kill = len(list((out / "features").glob("part-*.parquet")))
        os.kill(executors[0], signal.SIGKILL)
        rc = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc == 0, log.read_text()[-5000:]

    failures = _failures(events)
    assert failures["executors_removed"] >= 1 or failures["failed_task_attempts"] >= 1, failures
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["spark"]["master"] == url
    assert committed_before_kill < manifest["spark"]["partitions_planned"]

    rows = spark.read.parquet(str(out / "features")).collect()
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 90  # exactly once
    errors = spark.read.parquet(str(out / "errors")).collect()
    assert [(e["path"], e["error"]) for e in errors] == [
        ("file:" + str(images / "x" / "broken.jpg"), "truncated")]
    assert manifest["counts"]["featurized"] == 90 and manifest["counts"]["failed"] == 1

    clean = tmp_path / "clean"
    run(spark, FeaturizeConfig(input=str(images), output=str(clean), weights=weights_spec,
                               batch_size=2, pca_k=3))
    want = {r["path"]: np.asarray(r["features"], dtype=np.float32)
            for r in spark.read.parquet(str(clean / "features")).collect()}
    got = {r["path"]: np.asarray(r["features"], dtype=np.float32) for r in rows}
    assert set(got) == set(want)
    for path, ref in want.items():
        err = np.abs(got[path] - ref).max()
        assert err <= 1e-4 * np.abs(ref).max(), f"{path}: max|a-b| = {err}"
    print(f"fault: {committed_before_kill} part files committed before the kill; {failures}")
