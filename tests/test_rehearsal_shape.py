"""The rehearsal's cluster shape, without starting YARN: how NODES is scaled to this
machine and the executors sized for it, LOSE_NODE's refusals and its choice of node, the
driver's progress lines it follows, and the container memory it measures."""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pytest

from emr import sizing
from emr.rehearsal import run
from emr.rehearsal.lose import progress, victim
from emr.rehearsal.memory import PeakMemory
from emr.rehearsal.yarn import Container
from emr.settings import Settings
from featurize.errors import SettingsError


def shape_args(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"nodes": None, "lose_node": None, "node_mb": None,
                                 "node_vcores": None, **given})


def test_nodes_default_to_the_clusters_and_are_scaled_down_with_their_executors(monkeypatch):
    monkeypatch.setattr(run, "machine_mb", lambda: 24105)
    settings = Settings(bucket="featurize-rehearsal", core_count=2, task_count=1)
    shaped, nodes, node_mb, vcores, notes = run.cluster_shape(settings, shape_args())
    # three m5.xlarge (12,288 MB each) do not fit 24,105 - 4,096 MB: 6,656 MB each
    assert (nodes, node_mb, vcores) == (3, (24105 - 4096) // 3 // 32 * 32, 4) == (3, 6656, 4)
    assert any("scaled down from 12288 MB: 3 node(s)" in n for n in notes)
    assert (shaped.core_count, shaped.task_count, shaped.yarn_mb) == (3, 0, 6656)
    # sized as emr/sizing.py sizes a node of that memory: the driver's room kept
    expected = sizing.size("m5.xlarge", yarn_mb=6656)
    assert shaped.sizing == expected
    assert (expected.executor_cores * sizing.PYTHON_MB_PER_CORE + expected.executor_memory_mb
            + sizing.DRIVER_CONTAINER_MB) <= 6656
    # nodes that fit are EMR's size, and NODE_MB given stays as given
    _, _, node_mb, _, notes = run.cluster_shape(settings, shape_args(nodes=1))
    assert node_mb == 12288 and not any("scaled" in n for n in notes)
    shaped, _, node_mb, _, _ = run.cluster_shape(settings, shape_args(nodes=1, node_mb=8192))
    assert node_mb == 8192 and shaped.yarn_mb is None  # the type's executors, to be refused


@pytest.mark.parametrize("given, message", [
    ({"nodes": 0}, "NODES=0: give at least 1"),
    ({"nodes": 1, "lose_node": 0.5}, "LOSE_NODE with NODES=1: a node can only be lost"),
    ({"nodes": 2, "lose_node": 1.5}, "LOSE_NODE=1.5: give the fraction"),
    ({"nodes": 2, "lose_node": 0.0}, "LOSE_NODE=0.0: give the fraction"),
    ({"nodes": 12}, "NODES=12: 1664 MB per node on this machine is too small"),
])
def test_shapes_that_cannot_run_are_refused_with_the_fix(monkeypatch, given, message):
    monkeypatch.setattr(run, "machine_mb", lambda: 24105)
    with pytest.raises(SettingsError, match=message):
        run.cluster_shape(Settings(bucket="featurize-rehearsal"), shape_args(**given))


def test_the_lost_node_runs_an_executor_and_never_the_application_master():
    app = "application_17_0003"
    containers = [Container("container_17_0003_01_000001", 1, 3072),   # AM (the driver)
                  Container("container_17_0003_01_000002", 1, 6912),   # beside it
                  Container("container_17_0003_01_000003", 2, 6912),
                  Container("container_17_0003_01_000004", 0, 6912),
                  Container("container_17_0002_01_000002", 3, 6912)]   # another application
    assert victim(containers, app) == 0
    assert victim(containers[:3], app) == 2
    assert victim(containers[:2], app) is None  # only the AM's node runs executors
    assert victim(containers, "application_17_0004") is None


def test_progress_is_the_last_featurize_line_of_the_driver_log():
    log = ("INFO featurize.extract.progress: featurize: 0/4,096 images (0%), 0.0 images/s, ETA ?\n"
           "INFO featurize.extract.progress: featurize: 2,048/4,096 images (50%), 9.9 images/s\n"
           "INFO featurize.extract.job: predict: 10/20 images\n")
    assert progress(log) == (2048, 4096)
    assert progress("no progress yet") is None


HOLD = "import sys, time; b = bytearray(int(sys.argv[1]) * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ready', flush=True); time.sleep(60)"


def test_peak_memory_sums_a_containers_processes_as_yarn_does():
    """Two processes of one container holding 150 and 100 MB, one of another holding
    50 MB: each container's peak is the sum of its processes' resident memory."""
    procs = []
    try:
        for container, mb in (("container_9_0001_01_000002", 150),
                              ("container_9_0001_01_000002", 100),
                              ("container_9_0001_01_000003", 50)):
            p = subprocess.Popen([sys.executable, "-c", HOLD, str(mb)], stdout=subprocess.PIPE,
                                 env={"CONTAINER_ID": container}, text=True)
            assert p.stdout.readline().strip() == "ready"
            procs.append(p)
        with PeakMemory(interval=0.05) as peaks:
            time.sleep(0.3)
        interpreter = 40  # a bare python's own resident memory, at most
        two = peaks.mb["container_9_0001_01_000002"]
        one = peaks.mb["container_9_0001_01_000003"]
        assert 250 <= two <= 250 + 2 * interpreter, two
        assert 50 <= one <= 50 + interpreter, one
    finally:
        for p in procs:
            p.kill()
            p.wait()
