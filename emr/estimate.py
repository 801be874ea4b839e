"""How long a featurize step will take on a cluster and what the cluster will cost, before
it exists: the input's size (listed), what kind of images it holds (the headers of a
sample), the images/second per core the benchmarks measured here for that kind, the
cores the sizing rule gives the instance type, and a price.

The arithmetic (printed by ``make estimate``)::

    rate         = seconds per image interpolated, by the sample's median megapixels,
                   between the measured kinds (thumbnails, small photos, phone photos);
                   beyond the largest, growing as its last segment does
    cores        = core+task nodes x executors per node x cores per executor
    featurize s  = images / (images/s per core x cores)
    cluster h    = (START_MINUTES + featurize s / 60) / 60
    cost         = (1 master + core + task nodes) x cluster h x price per instance-hour
    spot         = the same hours with the task nodes (without task nodes: the core nodes)
                   at SPOT_PRICE_PER_HOUR (EC2) + the type's EMR charge; the rest on demand
    CORE_COUNT for TARGET_MINUTES = ceil(images / (rate x 60 x target) / cores per node)
                                    - task nodes

The rate is per core of this machine's CPU, which is not the cluster's: a range, not a
promise. Cluster start-up (provisioning and the bootstrap's install) is an assumption.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from emr.sizing import Sizing

REPO = Path(__file__).resolve().parents[1]
#: Written by ``make bench`` (thumbnails) and ``make bench-photos`` (small and phone
#: photos): the job's featurize images/second per core, by the kind of image measured.
RATE_FILE = REPO / "build" / "bench-rate.json"
#: Used for the kinds no bench has measured here: docs/PERFORMANCE.md, featurize stage
#: images/s per core on this 2-core machine, openvino, the default --decode draft.
#: megapixels and megabytes: the measured images' medians.
BUILTIN_RATES = {
    "thumbnails": {"megapixels": 0.01, "megabytes": 0.005, "images_per_second_per_core": 33.0,
                   "engine": "tensorflow",
                   "measured": "docs/PERFORMANCE.md (make bench, 2 cores, 2026-11)"},
    "small photos": {"megapixels": 0.15, "megabytes": 0.03,
                     "images_per_second_per_core": 37.0, "engine": "openvino",
                     "measured": "docs/PERFORMANCE.md (make bench-photos, 2 cores, "
                                 "2026-12-07, read by the workers)"},
    "phone photos": {"megapixels": 12.2, "megabytes": 1.9,
                     "images_per_second_per_core": 19.9, "engine": "openvino",
                     "measured": "docs/PERFORMANCE.md (make bench-photos, 2 cores, "
                                 "2026-12-07, read by the workers)"},
}
#: Images whose headers ``make estimate`` reads (evenly spaced over the listing), and
#: the bytes it asks for first (enough for a JPEG's header after its EXIF block; more,
#: up to 1 MB, when not).
SAMPLE = 24
HEAD_BYTES = 65536

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


def emr_charge(instance_type: str, vcpus: int | None) -> float | None:
    """The EMR charge per instance-hour of a type of the table (Spot or not), else None.

    >>> emr_charge("m5.2xlarge", 8)
    0.096
    """
    family = instance_type.split(".", 1)[0]
    if family not in XLARGE_PRICE or not vcpus:
        return None
    return round(XLARGE_PRICE[family][1] * vcpus / 4, 6)


def price(instance_type: str, vcpus: int | None,
          given: float | None) -> tuple[float | None, str]:
    """The price per instance-hour and where it comes from: ``given``
    (PRICE_PER_HOUR), else the dated table."""
    if given:
        return given, "PRICE_PER_HOUR"
    return (builtin_price(instance_type, vcpus),
            f"{instance_type} us-east-1 on-demand EC2 + EMR, prices of {PRICES_DATE}")


def load_rates(path: Path = RATE_FILE) -> dict[str, dict[str, Any]]:
    """The rates by kind: the benchmarks' last measurements here over the built-in ones.

    A file of the older form (one rate, written by ``make bench`` before the kinds) is
    the thumbnails' rate."""
    rates = {k: dict(v) for k, v in BUILTIN_RATES.items()}
    if path.is_file():
        measured = json.loads(path.read_text())
        if "rates" not in measured:
            measured = {"rates": {"thumbnails": {**BUILTIN_RATES["thumbnails"], **measured}}}
        for kind, rate in measured["rates"].items():
            rates[kind] = {**rates.get(kind, {}), **rate}
    return rates


def write_rate(kind: str, rate: dict[str, Any], path: Path = RATE_FILE) -> None:
    """Record a benchmark's rate for one kind of image, keeping the others'."""
    measured = json.loads(path.read_text()) if path.is_file() else {}
    if "rates" not in measured:
        measured = {"rates": {}}
    measured["rates"][kind] = rate
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(measured, indent=2) + "\n")


@dataclass(frozen=True)
class Sample:
    """What the headers of a sample of the input say: ``sizes`` (width, height) of the
    readable ones, ``unreadable`` the others, ``megabytes`` the sample's file sizes."""

    sizes: list[tuple[int, int]]
    unreadable: int
    megabytes: list[float]

    @property
    def megapixels(self) -> float | None:
        return float(median(w * h / 1e6 for w, h in self.sizes)) if self.sizes else None

    def describe(self) -> str:
        n = len(self.sizes) + self.unreadable
        mb = f"{median(self.megabytes):.2f} MB" if self.megabytes else "?"
        if not self.sizes:
            return f"sample of {n}: no readable image header; median {mb}"
        w, h = sorted(self.sizes, key=lambda s: s[0] * s[1])[len(self.sizes) // 2]
        return (f"sample of {n}: median {w}x{h} ({self.megapixels:.2f} MP), {mb}"
                + (f"; {self.unreadable} header(s) unreadable" if self.unreadable else ""))


def image_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from an image's first bytes (Pillow reads only the header)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(head)) as img:
            return img.size
    except Exception:  # noqa: BLE001 - a header Pillow cannot read is counted, not fatal
        return None


def sample_input(s3: Any, objects: list[tuple[str, int, int]], n: int = SAMPLE) -> Sample:
    """Read the headers of ``n`` objects evenly spaced over the listing (ranged GETs of
    :data:`HEAD_BYTES`, then of 1 MB for a header that needs more)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from featurize.storage.s3 import S3Uri, explain

    picked = [objects[i * len(objects) // min(n, len(objects))]
              for i in range(min(n, len(objects)))]
    sizes, unreadable = [], 0
    for uri, size, _ in picked:
        loc = S3Uri.parse(uri)
        found = None
        for length in (HEAD_BYTES, 1 << 20):
            try:
                body = s3.get_object(Bucket=loc.bucket, Key=loc.key,
                                     Range=f"bytes=0-{length - 1}")["Body"].read()
            except (ClientError, BotoCoreError) as exc:
                raise explain(exc, f"reading the header of {uri} (make estimate reads "
                                   f"{n} images' first bytes)") from exc
            found = image_size(body)
            if found is not None or len(body) < length:
                break
        if found is None:
            unreadable += 1
        else:
            sizes.append(found)
    return Sample(sizes, unreadable, [size / 1e6 for _, size, _ in picked])


def rate_for(rates: dict[str, dict[str, Any]], sample: Sample) -> tuple[float, str]:
    """Images/second per core for the sample's images, and how it was found.

    Seconds per image are interpolated linearly in the sample's median megapixels (its
    median megabytes when no header was readable) between the measured kinds, kept at
    the smallest kind's below it and extended along the last segment above the largest.
    """
    key, value = ("megapixels", sample.megapixels) if sample.megapixels is not None \
        else ("megabytes", median(sample.megabytes) if sample.megabytes else 0.0)
    points = sorted((float(r[key]), 1.0 / float(r["images_per_second_per_core"]), kind)
                    for kind, r in rates.items())
    unit = "MP" if key == "megapixels" else "MB"
    if len(points) == 1 or value <= points[0][0]:
        x, seconds, kind = points[0]
        return 1.0 / seconds, f"{kind} ({x:g} {unit}), {rate_source(rates[kind])}"
    upper = next((i for i, p in enumerate(points) if p[0] >= value), len(points) - 1)
    (x0, s0, k0), (x1, s1, k1) = points[upper - 1], points[upper]
    seconds = s0 + (s1 - s0) * (value - x0) / (x1 - x0)
    return 1.0 / seconds, (f"at {value:.2f} {unit} from {k0} ({x0:g} {unit}, {1 / s0:.1f}/s) "
                           f"and {k1} ({x1:g} {unit}, {1 / s1:.1f}/s); "
                           f"{rate_source(rates[k1])}")


def rate_source(rate: dict[str, Any]) -> str:
    size = f", image size {rate['image_size']}" if rate.get("image_size") else ""
    return f"{rate.get('engine', '?')} engine{size}, {rate.get('measured', '?')}"


@dataclass(frozen=True)
class Estimate:
    images: int
    input_bytes: int
    sizing: Sizing
    core_count: int
    task_count: int
    rate: float
    price: float | None
    #: SPOT_PRICE_PER_HOUR: the EC2 Spot price per instance-hour (None: not priced).
    spot_price: float | None = None

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

    @property
    def spot_nodes(self) -> tuple[int, str]:
        """How many nodes the Spot line prices on Spot, and which: the task nodes
        (TASK_MARKET=SPOT), or without task nodes the core nodes (SPOT=1)."""
        return (self.task_count, "task") if self.task_count else (self.core_count, "core")

    def spot_cost(self, emr: float) -> float | None:
        if self.price is None or self.spot_price is None:
            return None
        n, _ = self.spot_nodes
        return self.cluster_hours * ((self.instances - n) * self.price
                                     + n * (self.spot_price + emr))

    def core_count_for(self, target_minutes: float) -> int:
        """Core nodes that featurize within ``target_minutes`` (at least 1)."""
        per_node = self.sizing.executors_per_node * self.sizing.executor_cores
        nodes = math.ceil(self.images / (self.rate * 60 * target_minutes) / per_node)
        return max(1, nodes - self.task_count)


def report(e: Estimate, rate_source: str, *, price_source: str,
           target_minutes: float | None, sample: Sample | None = None) -> list[str]:
    """The lines ``make estimate`` prints, the arithmetic shown."""
    s = e.sizing
    lines = [
        f"input        : {e.images} images, {e.input_bytes / 1e9:.2f} GB"
        + (f"; {sample.describe()}" if sample is not None else ""),
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
    n_spot, which = e.spot_nodes
    emr = emr_charge(s.instance_type, s.vcpus)
    if e.spot_price is None:
        lines.append(f"spot         : give SPOT_PRICE_PER_HOUR= (the EC2 Spot price of "
                     f"{s.instance_type}) to price the {n_spot} {which} node(s) on Spot")
    elif emr is None or e.cost is None:
        lines.append(f"spot         : no EMR charge or price for {s.instance_type} in the table: "
                     f"price it by hand")
    else:
        spot = e.spot_cost(emr)
        lines.append(f"spot         : {n_spot} {which} x {e.cluster_hours:.3f} h x "
                     f"(${e.spot_price:.4f} Spot + ${emr:.4f} EMR)/h + {e.instances - n_spot} "
                     f"on demand = ${spot:.2f} (on demand ${e.cost:.2f}; a reclaim costs the "
                     f"node's running tasks, docs/emr.md)")
    if target_minutes:
        n = e.core_count_for(target_minutes)
        lines.append(f"target       : CORE_COUNT={n} featurizes within {target_minutes:g} min")
    return lines
