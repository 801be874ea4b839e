"""LOSE_NODE: one NodeManager stopped mid-featurize, as AWS reclaims a Spot task node.

EMR keeps ApplicationMasters (in cluster deploy mode: the driver) on core nodes once task
nodes exist (``AM_ON_CORE_NODES`` in :mod:`emr.requests`), and Spot task nodes hold only
executors. The rehearsal models that by its choice of victim: a node that runs an executor
of the step's application and not its ApplicationMaster. :class:`NodeLoss` follows the
driver's progress lines (``featurize: 2,048/4,096 images``) in its container log and, once
the fraction is reached, stops that node: its executors die mid-task, as on a reclaim
without the notice being used.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from emr.rehearsal.yarn import Container, LocalYarn

PROGRESS = re.compile(r"featurize: ([\d,]+)/([\d,]+) images")
#: a YARN application id, as spark-submit's log names it
APP_ID = re.compile(r"application_\d+_\d+")


def progress(text: str) -> tuple[int, int] | None:
    """The last ``featurize: done/total images`` of a driver log, or None.

    >>> progress("featurize: 10/400 images (2%)\\nfeaturize: 1,200/4,000 images (30%)")
    (1200, 4000)
    """
    found = PROGRESS.findall(text)
    if not found:
        return None
    done, total = found[-1]
    return int(done.replace(",", "")), int(total.replace(",", ""))


def victim(containers: Iterable[Container], app_id: str) -> int | None:
    """The node to stop: one running an executor of ``app_id`` but not its
    ApplicationMaster (the lowest index), or None when there is none."""
    ours = [c for c in containers if c.of(app_id)]
    masters = {c.node for c in ours if c.is_master}
    executors = sorted({c.node for c in ours if not c.is_master} - masters)
    return executors[0] if executors else None


class NodeLoss(threading.Thread):
    """Watch one step (its spark-submit log names the application) and stop a node when
    ``fraction`` of its images are featurized; ``log`` gets one line saying which."""

    def __init__(self, yarn: LocalYarn, submit_log: Path, fraction: float,
                 log: Callable[[str], None], poll: float = 0.5) -> None:
        super().__init__(name="lose-node", daemon=True)
        self.yarn, self.submit_log, self.fraction = yarn, submit_log, fraction
        self.log, self.poll = log, poll
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.poll):
            try:
                if self._check():
                    return
            except OSError:
                continue  # a log not written yet

    def _check(self) -> bool:
        apps = APP_ID.findall(self.submit_log.read_text(errors="replace"))
        if not apps:
            return False
        text = ""
        for name in ("stderr", "stdout"):
            path = self.yarn.container_log(apps[0], name=name)
            text += path.read_text(errors="replace") if path else ""
        seen = progress(text)
        if seen is None or seen[1] == 0 or seen[0] < self.fraction * seen[1]:
            return False
        node = victim(self.yarn.containers(), apps[0])
        at = f"at {seen[0]:,}/{seen[1]:,} images"
        if node is None:
            self.log(f"LOSE_NODE: no node runs an executor without the ApplicationMaster {at}; "
                     f"none stopped")
        else:
            self.yarn.stop_node(node)
            self.log(f"LOSE_NODE: stopped node {node} {at}")
        return True

    def stop(self) -> None:
        self._done.set()
        self.join()
