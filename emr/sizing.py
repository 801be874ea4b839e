"""Executor and driver sizes from the instance type: what YARN offers on each node, and how
the job fills it.

The rule, per core or task node of ``V`` vCPUs and ``M`` MB of YARN memory (EMR's
``yarn.nodemanager.resource.memory-mb`` for the type):

1. Keep room for the driver on every node (cluster deploy mode puts it in a YARN
   container on whichever node YARN picks): ``DRIVER_CONTAINER_MB``.
2. Each executor core runs one Python worker holding the engine and the model (measured
   peak RSS 430 MB with openvino, 1.1 GB with tensorflow, docs/PERFORMANCE.md):
   ``PYTHON_MB_BY_ENGINE`` of overhead per core.
3. Cores per executor: ``EXECUTOR_CORES`` when given, else the choice (4 at most) that
   runs the most cores per node with at least ``MIN_HEAP_MB`` of heap per executor;
   executors per node: as many as fit the vCPUs and the memory.
4. Whatever memory is left goes to the executors' heaps (cached rows, Arrow buffers).

So m5.xlarge (4 vCPU, 12,288 MB): one 4-core executor, 6,144 MB heap + 3,072 MB overhead
(openvino; tensorflow: 3,072 + 6,144), beside a 3,072 MB driver container. Memory-poor
types (c5, c6i, c7i: 2 GiB per vCPU) can run fewer cores than they have: the sizes say
so rather than overcommit and be killed by YARN.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from featurize.errors import SettingsError

#: ``yarn.nodemanager.resource.memory-mb`` that EMR sets, by the instance's memory in GiB.
#: Source: Amazon EMR Release Guide, "Task configuration"
#: (https://docs.aws.amazon.com/emr/latest/ReleaseGuide/emr-hadoop-task-config.html),
#: the m5, c5 and r5 tables (read in its source, awsdocs/amazon-emr-release-guide,
#: doc_source/emr-hadoop-task-config.md, 2022-01-24). Across those three families every
#: type with the same memory has the same value, so the newer families of the same
#: sizes (m6i, m7i, c6i, c7i, r6i, r7i) are read from this map by their memory.
YARN_MB_BY_GIB = {8: 6144, 16: 12288, 32: 24576, 64: 57344, 72: 65536, 96: 90112,
                  128: 122880, 144: 139264, 192: 188416, 256: 253952, 384: 385024,
                  512: 516096, 768: 778240}

#: GiB of memory per vCPU of each family (general purpose, compute, memory optimised).
_GIB_PER_VCPU = {"m": 4, "c": 2, "r": 8}
_SIZE_VCPUS = {"xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "9xlarge": 36,
               "12xlarge": 48, "16xlarge": 64, "18xlarge": 72, "24xlarge": 96,
               "32xlarge": 128, "48xlarge": 192}
#: The sizes each family is sold in (EC2 instance types); only those whose memory is
#: in :data:`YARN_MB_BY_GIB` are listed below.
_FAMILY_SIZES = {
    "m5": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge",
    "m6i": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
    "m7i": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
    "c5": "xlarge 2xlarge 4xlarge 9xlarge 12xlarge 18xlarge 24xlarge",
    "c6i": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
    "c7i": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
    "r5": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge",
    "r6i": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 32xlarge",
    "r7i": "xlarge 2xlarge 4xlarge 8xlarge 12xlarge 16xlarge 24xlarge 48xlarge",
}


def _node_types() -> dict[str, tuple[int, int]]:
    table = {}
    for family, sizes in _FAMILY_SIZES.items():
        for size in sizes.split():
            vcpus = _SIZE_VCPUS[size]
            gib = vcpus * _GIB_PER_VCPU[family[0]]
            if gib in YARN_MB_BY_GIB:
                table[f"{family}.{size}"] = (vcpus, YARN_MB_BY_GIB[gib])
    return table


#: instance type -> (vCPUs, YARN memory MB per node).
NODE_TYPES = _node_types()

#: The driver's container: 1 GiB of JVM heap (listing, broadcast, PCA's 1280×1280
#: covariance) + 2 GiB for its Python process, which imports TensorFlow and builds the
#: model once to load the weights. Measured under YARN's memory check on a new node (empty
#: IR cache, so the driver also converts the model to OpenVINO IR): 1,402 MB at its peak,
#: 46 % of the container (`make emr-rehearse`, docs/emr.md).
DRIVER_MEMORY_MB = 1024
DRIVER_OVERHEAD_MB = 2048
DRIVER_CONTAINER_MB = DRIVER_MEMORY_MB + DRIVER_OVERHEAD_MB
#: Python memory per executor core (one worker each), outside the JVM heap, by engine:
#: ~1.7x the measured peak RSS of a worker at batch 16 (`make bench`, docs/PERFORMANCE.md:
#: openvino 430 MB, tensorflow 1,100 MB), for bigger photos' decode buffers.
PYTHON_MB_BY_ENGINE = {"openvino": 768, "tensorflow": 1536}
#: The default engine's (the job's --engine default).
PYTHON_MB_PER_CORE = PYTHON_MB_BY_ENGINE["openvino"]
MIN_HEAP_MB = 1024
MAX_AUTO_CORES = 4


@dataclass(frozen=True)
class Sizing:
    """Executors and driver for one node type."""

    instance_type: str
    vcpus: int | None
    yarn_mb: int | None
    executors_per_node: int
    executor_cores: int
    executor_memory_mb: int
    executor_overhead_mb: int

    @property
    def executor_container_mb(self) -> int:
        return self.executor_memory_mb + self.executor_overhead_mb

    def summary(self) -> str:
        node = (f"{self.instance_type} ({self.vcpus} vCPU, {self.yarn_mb} MB for YARN)"
                if self.yarn_mb else f"{self.instance_type} (sizes given)")
        used = self.executors_per_node * self.executor_cores
        return (f"sizing: {node}: {self.executors_per_node} executor(s) per node x "
                f"{self.executor_cores} cores ({used} cores used), "
                f"{self.executor_memory_mb}m heap + {self.executor_overhead_mb}m Python; "
                f"driver {DRIVER_MEMORY_MB}m + {DRIVER_OVERHEAD_MB}m")


def parse_mb(text: str, variable: str) -> int:
    """``6g``, ``6144m`` or ``6144`` (MB) as MB.

    >>> parse_mb("6g", "X"), parse_mb("6144m", "X"), parse_mb("512", "X")
    (6144, 6144, 512)
    """
    m = re.fullmatch(r"\s*(\d+)\s*([gGmM]?)\s*", text or "")
    if not m:
        raise SettingsError(f"{variable}={text!r}: give a size like 6g or 6144m")
    return int(m.group(1)) * (1024 if m.group(2).lower() == "g" else 1)


def _fit(vcpus: int, yarn_mb: int, cores: int, python_mb: int) -> tuple[int, int]:
    """(executors per node, heap MB each) for ``cores`` per executor; (0, 0) if none fits."""
    room = yarn_mb - DRIVER_CONTAINER_MB
    per_executor = python_mb * cores + MIN_HEAP_MB
    executors = min(vcpus // cores, max(room, 0) // per_executor)
    if executors < 1:
        return 0, 0
    container = room // executors
    heap = (container - python_mb * cores) // 256 * 256
    return executors, heap


def size(instance_type: str, executor_cores: int | None = None,
         executor_memory: str | None = None, engine: str = "openvino",
         yarn_mb: int | None = None) -> Sizing:
    """The executor plan for core/task nodes of ``instance_type``, for Python workers
    running ``engine``; ``yarn_mb`` replaces the type's YARN memory (the rehearsal's
    nodes, scaled down to fit this machine).

    Raises
    ------
    SettingsError
        An unknown type without ``executor_memory``, or ``executor_cores`` that do not
        fit the node.
    """
    python_mb = PYTHON_MB_BY_ENGINE[engine]
    if instance_type not in NODE_TYPES:
        if not executor_memory:
            raise SettingsError(
                f"INSTANCE_TYPE={instance_type}: its YARN memory is not in the table of "
                f"emr/sizing.py; choose one of {', '.join(sorted(NODE_TYPES))}, or give "
                f"EXECUTOR_MEMORY= (heap per executor, e.g. 4g) and EXECUTOR_CORES= "
                f"(one executor per node is then assumed)")
        cores = executor_cores or MAX_AUTO_CORES
        return Sizing(instance_type, None, None, 1, cores,
                      parse_mb(executor_memory, "EXECUTOR_MEMORY"), python_mb * cores)
    vcpus, type_mb = NODE_TYPES[instance_type]
    yarn_mb = yarn_mb or type_mb
    if executor_cores:
        if executor_cores > vcpus:
            raise SettingsError(f"EXECUTOR_CORES={executor_cores}: {instance_type} has "
                                f"{vcpus} vCPUs")
        choices = [executor_cores]
    else:
        choices = list(range(min(vcpus, MAX_AUTO_CORES), 0, -1))
    # the most cores per node; among equals, the fewest (larger) executors
    best = max(((_fit(vcpus, yarn_mb, c, python_mb)[0] * c, c) for c in choices))
    cores = best[1]
    executors, heap = _fit(vcpus, yarn_mb, cores, python_mb)
    if executors < 1:
        raise SettingsError(
            f"EXECUTOR_CORES={cores} does not fit {instance_type} ({yarn_mb} MB for YARN): "
            f"each core needs {python_mb} MB for its Python worker, plus "
            f"{MIN_HEAP_MB} MB of heap and the {DRIVER_CONTAINER_MB} MB driver container; "
            f"give fewer cores, or leave EXECUTOR_CORES unset")
    if executor_memory:
        heap = parse_mb(executor_memory, "EXECUTOR_MEMORY")
        if executors * (heap + python_mb * cores) > yarn_mb - DRIVER_CONTAINER_MB:
            raise SettingsError(
                f"EXECUTOR_MEMORY={executor_memory}: {executors} executor(s) of {heap}m + "
                f"{python_mb * cores}m and the driver's {DRIVER_CONTAINER_MB}m do "
                f"not fit {instance_type}'s {yarn_mb} MB")
    return Sizing(instance_type, vcpus, yarn_mb, executors, cores, heap,
                  python_mb * cores)
