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


def _executor_id(pid: int) -> str:
    """Spark's id of the executor JVM ``pid`` (its ``--executor-id`` argument)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return argv[argv.index(b"--executor-id") + 1].decode()


def _losses(event_dir: Path) -> dict[str, list[str]]:
    """From Spark's event log, the executors that were lost: ``removed`` (an
    ExecutorRemoved event; not logged for a normal shutdown) and ``lost_tasks`` (a task
    that ended with ExecutorLostFailure), each as executor ids."""
    removed, lost_tasks = [], []
    [log] = list(event_dir.iterdir())
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["Event"] == "SparkListenerExecutorRemoved":
            removed.append(event["Executor ID"])
        elif event["Event"] == "SparkListenerTaskEnd" and \
                event["Task End Reason"]["Reason"] == "ExecutorLostFailure":
            lost_tasks.append(event["Task End Reason"]["Executor ID"])
    return {"removed": removed, "lost_tasks": lost_tasks}


def _kill_and_finish(proc: subprocess.Popen, pid: int, log: Path, events: Path,
                     kill: bool = True) -> tuple[str, dict[str, list[str]]]:
    """SIGKILL the executor JVM ``pid``, let the job finish, and require that it succeeded
    and that Spark's event log shows that executor lost; returns its id and the losses."""
    killed = _executor_id(pid)
    if kill:
        os.kill(pid, signal.SIGKILL)
    rc = proc.wait(timeout=600)
    assert rc == 0, log.read_text()[-5000:]
    losses = _losses(events)
    assert killed in losses["removed"] or killed in losses["lost_tasks"], (killed, losses)
    return killed, losses


def _fault_images(images: Path) -> Path:
    """90 JPEGs in three labels and one broken file."""
    for c, label in enumerate(("x", "y", "z")):
        for i in range(30):
            write(images / label / f"{label}{i:03d}.jpg",
                  image_bytes(pattern_image(500 + 100 * c + i), "JPEG"))
    write(images / "x" / "broken.jpg", b"\xff\xd8\xff\xe0 cut off")
    return images


def _submit(url: str, images: Path, out: Path, events: Path, weights: str,
            log: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    events.mkdir()
    cmd = [str(BIN / "spark-submit"), "--master", url, *extra,
           "--conf", "spark.executor.cores=1", "--conf", "spark.cores.max=2",
           "--conf", "spark.executor.memory=1g", "--conf", "spark.ui.enabled=false",
           "--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir=file:{events}",
           str(REPO / "jobs" / "featurize_images.py"), "--input", str(images),
           "--output", str(out), "--weights", weights, "--batch-size", "2",
           "--files-per-partition", "2", "--pca-k", "3"]
    with open(log, "w") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYSPARK_PYTHON": sys.executable},
                                start_new_session=True)


@pytest.fixture(scope="module")
def clean_run(standalone, weights_spec, tmp_path_factory) -> tuple[Path, Path]:
    """The control: the fault tests' images, and the job run on the same cluster with
    nothing killed: ``(images, run)``. Spark's event log must show no lost executor."""
    url = standalone[0]
    tmp = tmp_path_factory.mktemp("clean")
    images = _fault_images(tmp / "images")
    clean = tmp / "run"
    control = _submit(url, images, clean, tmp / "events", weights_spec, tmp / "clean.log")
    assert control.wait(timeout=600) == 0, (tmp / "clean.log").read_text()[-5000:]
    assert _losses(tmp / "events") == {"removed": [], "lost_tasks": []}
    manifest = json.loads((clean / "manifest.json").read_text())
    assert manifest["counts"]["model_images"] == 90  # each image through the CNN once
    return images, clean


def _assert_like_the_clean_run(spark, out: Path, clean_run: tuple[Path, Path]) -> dict:
    """Every input exactly once, the clean run's outcomes and features (1e-4); returns
    the run's manifest."""
    images, clean = clean_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["counts"]["featurized"] == 90 and manifest["counts"]["failed"] == 1
    rows = spark.read.parquet(str(out / "features")).collect()
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 90  # exactly once
    assert not list((out / "features").glob("_temporary*"))
    errors = spark.read.parquet(str(out / "errors")).collect()
    assert [(e["path"], e["error"]) for e in errors] == [
        ("file:" + str(images / "x" / "broken.jpg"), "truncated")]
    want = {r["path"]: np.asarray(r["features"], dtype=np.float32)
            for r in spark.read.parquet(str(clean / "features")).collect()}
    got = {r["path"]: np.asarray(r["features"], dtype=np.float32) for r in rows}
    assert set(got) == set(want)
    for path, ref in want.items():
        err = np.abs(got[path] - ref).max()
        assert err <= 1e-4 * np.abs(ref).max(), f"{path}: max|a-b| = {err}"
    return manifest


def test_killed_executor_costs_a_retry_not_a_wrong_answer(spark, standalone, clean_run,
                                                          weights_spec, tmp_path):
    url, worker_pids, _ = standalone
    images = clean_run[0]
    out = tmp_path / "run"
    log = tmp_path / "submit.log"
    proc = _submit(url, images, out, tmp_path / "events", weights_spec, log)
    try:
        # Kill once three tasks have committed, so that both executors have finished
        # work (their persisted UDF output is lost with them and computed again).
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / "features").glob("part-*.parquet"))) >= 3:
                break
            time.sleep(0.05)
        executors = _executor_pids(worker_pids)
        assert proc.poll() is None and executors, \
            f"job ended before any kill (rc {proc.poll()}):\n{log.read_text()[-3000:]}"
        committed_before_kill = len(list((out / "features").glob("part-*.parquet")))
        # (FEATURIZE_FAULT_NO_KILL=1 shows that the test fails without the kill)
        killed, losses = _kill_and_finish(proc, executors[0], log, tmp_path / "events",
                                          kill=os.environ.get("FEATURIZE_FAULT_NO_KILL") != "1")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # the fault happened, to the executor killed (above), and work was redone
    manifest = _assert_like_the_clean_run(spark, out, clean_run)
    assert manifest["spark"]["master"] == url
    assert committed_before_kill < manifest["spark"]["partitions_planned"]
    assert manifest["counts"]["model_images"] > 90, manifest["counts"]
    print(f"fault: executor {killed} killed after {committed_before_kill} part files; "
          f"{losses}; model_images {manifest['counts']['model_images']}")


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_executor_killed_inside_a_task_commit_leaves_every_input_once(
        spark, standalone, clean_run, weights_spec, tmp_path, when):
    """The commit window: a test committer (tests/java/StallingCommitter.java) holds the
    first features/ task commit until the test kills that executor inside commitTask:
    ``before`` its files move, or ``after`` they moved into features/ but before the
    driver learns the task committed (the rerun's file must replace it, not join it). The task runs again elsewhere; every
    input lands once, with the clean run's features."""
    url = standalone[0]
    jars = BIN.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / \
        "site-packages" / "pyspark" / "jars"
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-cp", f"{jars}/*", "-d", str(classes),
                    str(REPO / "tests" / "java" / "StallingCommitter.java")],
                   check=True, capture_output=True)
    jar = tmp_path / "stalling.jar"
    subprocess.run(["jar", "cf", str(jar), "-C", str(classes), "."], check=True)
    stall = tmp_path / "stall"
    stall.mkdir()
    out, log = tmp_path / "run", tmp_path / "submit.log"
    proc = _submit(url, clean_run[0], out, tmp_path / "events", weights_spec, log, extra=(
        "--jars", str(jar), "--driver-class-path", str(jar),
        "--conf", "spark.sql.parquet.output.committer.class=StallingCommitter",
        "--conf", f"spark.executorEnv.FEATURIZE_STALL_DIR={stall}",
        "--conf", f"spark.executorEnv.FEATURIZE_STALL_WHEN={when}"))
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None \
                and not (stall / "stalled").exists():
            time.sleep(0.05)
        assert (stall / "stalled").exists(), log.read_text()[-3000:]
        time.sleep(0.2)  # the pid is written before the file is closed: let it land
        pid, *partition = (stall / "stalled").read_text().splitlines()
        # v2 commit algorithm on a local output (featurize.storage.filesystem.commit_options): a
        # committed task's file is in features/ itself, before the kill in "after" only
        landed = list((out / "features").glob(f"part-{int(partition[0]):05d}-*.parquet")) \
            if partition else []
        assert bool(landed) == (when == "after"), (partition, landed)
        committed_before_kill = len(list((out / "features").glob("part-*.parquet")))
        killed, losses = _kill_and_finish(proc, int(pid), log, tmp_path / "events")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    _assert_like_the_clean_run(spark, out, clean_run)
    print(f"commit window ({when}): executor {killed} killed inside commitTask after "
          f"{committed_before_kill} part files; {losses}")
