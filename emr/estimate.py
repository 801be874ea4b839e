"""How long a featurize step will take on a cluster and what the cluster will cost, before
it exists: the input's size (listed), the images/second per core that ``make bench``
measured here, the cores the sizing rule gives the instance type, and a price.

The arithmetic (printed by ``make estimate``)::

    cores        = core+task nodes x executors per node x cores per executor
    featurize s  = images / (images/s per core x cores)
    cluster h    = (START_MINUTES + featurize s / 60) / 60
    cost         = (1 master + core + task nodes) x cluster h x price per instance-hour
    CORE_COUNT for TARGET_MINUTES = ceil(images / (rate x 60 x target) / cores per node)
                                    - task nodes

The rate is per core of this machine's CPU, which is not the cluster's: a range, not a
promise. Cluster start-up (provisioning and the bootstrap's install) is an assumption.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emr.sizing import Sizing

REPO = Path(__file__).resolve().parents[1]
#: Written by ``make bench`` (bench/run.py): the job's featurize images/second per core.
RATE_FILE = REPO / "build" / "bench-rate.json"
#: Used when no bench has run here: docs/PERFORMANCE.md, make bench on 5,000 Fruits-360
#: images, 2 cores, TensorFlow engine, batch 16 (featurize stage 65.7-67.6 images/s).
BUILTIN_RATE = {"images_per_second_per_core": 33.0, "engine": "tensorflow",
                "measured": "docs/PERFORMANCE.md (make bench, 2 cores, 2026-11)"}
#: Minutes from run_job_flow to the first step running: provisioning plus the bootstrap
#: action (the wheelhouse install). An assumption, not measured here.
START_MINUTES = 12

#: us-east-1 on-demand USD per instance-hour of each family's xlarge (4 vCPU) size: EC2
#: Linux + the EMR charge. Larger sizes scale with vCPUs (AWS prices these families
#: linearly). Collected 2026-12-02 from public price lists, not from AWS's pages (not
#: reachable here); the EMR charge of the 6i/7i families is taken equal to the 5-series'.
#: Check https://aws.amazon.com/emr/pricing/ and pass PRICE_PER_HOUR= for your region.
PRICES_DATE = "2026-12-02"
XLARGE_PRICE = {  # family: (EC2, EMR)
    "m5": (0.192, 0.048), "m6i": (0.192, 0.048), "m7i": (0.2016, 0.048),
    "c5": (0.17, 0.043), "c6i": (0.17, 0.043), "c7i": (0.1785, 0.043),
    "r5": (0.252, 0.063), "r6i": (0.252, 0.063), "r7i": (0.2646, 0.063),
}


def builtin_price(instance_type: str, vcpus: int | None) -> float | None:
    """EC2 + EMR per hour for a type of the table, else None.

    >>> round(builtin_price("m5.4xlarge", 16), 4)
    0.96
    """
    family = instance_type.split(".", 1)[0]
    if family not in XLARGE_PRICE or not vcpus:
        return None
    ec2, emr = XLARGE_PRICE[family]
    return (ec2 + emr) * vcpus / 4


def price(instance_type: str, vcpus: int | None,
          given: float | None) -> tuple[float | None, str]:
    """The price per instance-hour and where it comes from: ``given``
    (PRICE_PER_HOUR), else the dated table."""
    if given:
        return given, "PRICE_PER_HOUR"
    return (builtin_price(instance_type, vcpus),
            f"{instance_type} us-east-1 on-demand EC2 + EMR, prices of {PRICES_DATE}")


def rate_source(rate: dict[str, Any]) -> str:
    size = f", image size {rate['image_size']}" if rate.get("image_size") else ""
    return f"{rate.get('engine', '?')} engine{size}, {rate.get('measured', '?')}"


def load_rate(path: Path = RATE_FILE) -> dict[str, Any]:
    """The last ``make bench`` rate on this machine, else the built-in one."""
    if path.is_file():
        return json.loads(path.read_text())
    return dict(BUILTIN_RATE)


@dataclass(frozen=True)
class Estimate:
    images: int
    input_bytes: int
    sizing: Sizing
    core_count: int
    task_count: int
    rate: float
    price: float | None

    @property
    def cores(self) -> int:
        return (self.core_count + self.task_count) * self.sizing.executors_per_node \
            * self.sizing.executor_cores

    @property
    def featurize_seconds(self) -> float:
        return self.images / (self.rate * self.cores)

    @property
    def cluster_hours(self) -> float:
        return (START_MINUTES + self.featurize_seconds / 60) / 60

    @property
    def instances(self) -> int:
        return 1 + self.core_count + self.task_count

    @property
    def cost(self) -> float | None:
        return None if self.price is None else self.instances * self.cluster_hours * self.price

    def core_count_for(self, target_minutes: float) -> int:
        """Core nodes that featurize within ``target_minutes`` (at least 1)."""
        per_node = self.sizing.executors_per_node * self.sizing.executor_cores
        nodes = math.ceil(self.images / (self.rate * 60 * target_minutes) / per_node)
        return max(1, nodes - self.task_count)


def report(e: Estimate, rate_source: str, *, price_source: str,
           target_minutes: float | None) -> list[str]:
    """The lines ``make estimate`` prints, the arithmetic shown."""
    s = e.sizing
    lines = [
        f"input        : {e.images} images, {e.input_bytes / 1e9:.2f} GB",
        f"cluster      : 1 master + {e.core_count} core"
        + (f" + {e.task_count} task" if e.task_count else "")
        + f" x {s.instance_type}; {s.executors_per_node} executor(s) per node x "
          f"{s.executor_cores} cores = {e.cores} cores",
        f"rate         : {e.rate:.1f} images/s per core ({rate_source})",
        f"featurize    : {e.images} / ({e.rate:.1f} x {e.cores}) = "
        f"{e.featurize_seconds:.0f} s ({e.featurize_seconds / 60:.1f} min)",
        f"cluster time : {START_MINUTES} min start-up (assumed) + "
        f"{e.featurize_seconds / 60:.1f} min = {e.cluster_hours * 60:.1f} min "
        f"= {e.cluster_hours:.3f} h",
    ]
    if e.cost is None:
        lines.append(f"cost         : no price for {s.instance_type}: give PRICE_PER_HOUR= "
                     f"(EC2 + EMR, per instance-hour)")
    else:
        lines.append(f"cost         : {e.instances} instances x {e.cluster_hours:.3f} h x "
                     f"${e.price:.4f}/h = ${e.cost:.2f} ({price_source})")
    if target_minutes:
        n = e.core_count_for(target_minutes)
        lines.append(f"target       : CORE_COUNT={n} featurizes within {target_minutes:g} min")
    return lines
