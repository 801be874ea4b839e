"""One step on the rehearsal's YARN: its spark-submit, its containers' memory, its line.

:func:`run_step` runs the step's own command line (as :func:`emr.requests.steps` builds it
for ``make submit``) against the local YARN while :class:`~emr.rehearsal.memory.PeakMemory`
samples every container and, with LOSE_NODE, :class:`~emr.rehearsal.lose.NodeLoss` stops a
node; then it asks YARN for the attempts, the final status and the containers' sizes and
prints one :class:`StepResult` line, and on failure the driver's log tails.
"""
from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emr import requests
from emr.logs import DRIVER_FILES, out, print_driver_attempts, print_tail
from emr.rehearsal.lose import APP_ID, NodeLoss
from emr.rehearsal.memory import PeakMemory
from emr.rehearsal.yarn import Container, LocalYarn, spark_home

@dataclass(frozen=True)
class StepResult:
    job: str
    app_id: str | None
    attempts: int
    final: str
    seconds: float
    #: "driver 1,812 of 3,072 MB, executors …": peaks against container sizes
    memory: str = ""
    nodes_lost: int | None = None
    #: containers YARN killed for outgrowing their size (the driver's log says which)
    killed_for_memory: int = 0

    def line(self) -> str:
        text = (f"step {self.job}: {self.app_id or '-'} attempts={self.attempts} "
                f"final={self.final} {self.seconds:.0f} s")
        if self.memory:
            text += f"; peak memory: {self.memory}"
        if self.nodes_lost is not None:
            text += f"; nodes lost={self.nodes_lost}"
        if self.killed_for_memory:
            text += f"; killed for memory={self.killed_for_memory}"
        return text


def memory_text(containers: Sequence[Container], peaks: dict[str, float], app_id: str
                ) -> tuple[str, list[str]]:
    """The step line's memory part, and a warning for each container whose sampled peak
    passed its size (YARN's check, every 3 s, kills such a container).

    >>> memory_text([Container("container_1_0001_01_000001", 0, 3072),
    ...              Container("container_1_0001_01_000002", 1, 6912),
    ...              Container("container_1_0001_01_000003", 0, 6912)],
    ...             {"container_1_0001_01_000001": 1811.6, "container_1_0001_01_000002": 2400.2,
    ...              "container_1_0001_01_000003": 2500.9}, "application_1_0001")
    ('driver 1,812 of 3,072 MB, executors 2,501 of 6,912 MB (largest of 2)', [])
    """
    ours = [c for c in containers if c.of(app_id)]
    parts, over = [], []
    for label, group in (("driver", [c for c in ours if c.is_master]),
                         ("executors", [c for c in ours if not c.is_master])):
        measured = [c for c in group if c.id in peaks]
        if not measured:
            continue
        top = max(measured, key=lambda c: peaks[c.id])
        of = f" (largest of {len(group)})" if label == "executors" else ""
        parts.append(f"{label} {peaks[top.id]:,.0f} of {top.mb:,} MB{of}")
        over += [f"{c.id} peaked at {peaks[c.id]:,.0f} MB, over its {c.mb:,} MB container"
                 for c in measured if peaks[c.id] > c.mb]
    return ", ".join(parts), over


def drop_confs(argv: Sequence[str], keys: Sequence[str]) -> list[str]:
    """``argv`` without the ``--conf KEY=...`` pairs of ``keys``.

    >>> drop_confs(["spark-submit", "--conf", "a=1", "--conf", "b=2", "x.py"], ["a"])
    ['spark-submit', '--conf', 'b=2', 'x.py']
    """
    kept: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--conf" and i + 1 < len(argv) and argv[i + 1].split("=", 1)[0] in keys:
            skip = True
            continue
        kept.append(arg)
    return kept


def run_step(yarn: LocalYarn, step: requests.Step, env: dict[str, str], log_dir: Path,
             drop: Sequence[str], tail_lines: int, lose_node: float | None = None
             ) -> StepResult:
    """One step's command line through spark-submit against the local YARN, its
    containers' memory sampled throughout (and with ``lose_node``, a featurize step loses a
    node); on failure, the driver's log tail (the first attempt's, then any later one's)."""
    argv = drop_confs(step.request["HadoopJarStep"]["Args"], drop)
    argv[0] = str(spark_home() / "bin" / "spark-submit")
    log_path = log_dir / f"{step.job}.spark-submit.log"
    lost_before = yarn.lost_nodes()
    start = time.monotonic()
    with open(log_path, "w") as log, PeakMemory() as peaks:
        loss = (NodeLoss(yarn, log_path, lose_node, out)
                if lose_node is not None and step.job == "featurize" else None)
        if loss:
            loss.start()
        try:
            proc = subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  check=False)
        finally:
            if loss:
                loss.stop()
    seconds = time.monotonic() - start
    text = log_path.read_text(errors="replace")
    apps = APP_ID.findall(text)
    if not apps:
        result = StepResult(step.job, None, 0, "NOT_SUBMITTED", seconds)
        out(result.line())
        errors = [ln for ln in text.splitlines() if "Exception" in ln or "ERROR" in ln]
        print_tail(f"spark-submit ({log_path})", "\n".join(errors) or text, tail_lines)
        return result
    report = yarn.report(apps[0])
    final = report.final if proc.returncode == 0 or report.final != "SUCCEEDED" else "FAILED"
    memory, over = memory_text(yarn.containers(), peaks.mb, apps[0])
    result = StepResult(step.job, apps[0], report.attempts, final, seconds, memory,
                        yarn.lost_nodes() - lost_before, _killed_for_memory(yarn, apps[0]))
    out(result.line())
    for line in over:
        out(f"memory: {line}")
    if final != "SUCCEEDED":
        if report.diagnostics:
            out(f"YARN: {report.diagnostics.splitlines()[0]}")
        found = {}
        for attempt in range(1, report.attempts + 1):
            for name in DRIVER_FILES:
                path = yarn.container_log(apps[0], attempt, name=name)
                if path is not None:
                    found.setdefault(attempt, {})[name] = (
                        str(path), path.read_text(errors="replace"))
        print_driver_attempts(found, tail_lines)
    return result


#: Spark's YarnAllocator, once per container YARN's physical-memory check killed
KILLED_FOR_MEMORY = "Container killed by YARN for exceeding physical memory limits"


def _killed_for_memory(yarn: LocalYarn, app_id: str) -> int:
    path = yarn.container_log(app_id, name="stderr")
    if path is None:
        return 0
    return sum(1 for line in path.read_text(errors="replace").splitlines()
               if "YarnAllocator" in line and KILLED_FOR_MEMORY in line)
