"""``make bench``: ceiling vs job on the same images, in one run.

    python -m bench.run [--n 5000] [--small 500] [--weights imagenet] [--engine openvino]

1. the ceiling (bench/ceiling.py) in its own plain Python process, with the job's
   engine at its best; then the TensorFlow ceiling beside it (``--no-tf-ceiling``
   skips it);
2. the job (bench/job.py) on local Spark over the same N images;
3. the job again over ``--small`` images, to compare the Python workers' peak RSS.

The last line is exactly ``ratio job/ceiling: X.XX``: the job's end-to-end images/second
divided by the ceiling's (higher is better; 1.00 = as fast as the bare model).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.images import REPO, prepare


def _children(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


class WorkerRss:
    """Samples the peak RSS (VmHWM) of the Python workers Spark starts under a process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in _children(self.pid):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    if b"pyspark.daemon" not in cmd and b"pyspark/daemon" not in cmd:
                        continue
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            kb = int(line.split()[1])
                            self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), kb)
                except OSError:
                    continue
            self._stop.wait(0.25)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        # The daemon itself is small; the forked workers hold the model.
        values = sorted(self.peak_kb.values(), reverse=True)
        return {"max_mb": values[0] / 1024 if values else 0.0,
                "processes": len(values)}


def run_child(module: str, args: list[str], sample_rss: bool = False) -> tuple[dict, dict]:
    cmd = [sys.executable, "-m", module, *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    sampler = WorkerRss(proc.pid) if sample_rss else None
    last = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line.startswith("{"):
            last = line
        else:
            print("  " + line, flush=True)
    rc = proc.wait()
    rss = sampler.stop() if sampler else {}
    if rc != 0 or not last:
        raise SystemExit(f"{module} failed (exit {rc})")
    return json.loads(last), rss


def write_rate(job: dict, image_size: int, images: Path, kind: str = "thumbnails",
               bench: str = "make bench") -> None:
    """The featurize stage's images/second per core for ``make estimate``
    (emr/estimate.py reads it), with the median megapixels and megabytes of the images."""
    from statistics import median

    from PIL import Image

    from emr.estimate import RATE_FILE, write_rate as record

    every = sorted(images.rglob("*.jp*g"))
    files = every[::max(1, len(every) // 50)]
    pixels, sizes = [], []
    for f in files:
        with Image.open(f) as img:
            pixels.append(img.width * img.height / 1e6)
        sizes.append(f.stat().st_size / 1e6)
    per_core = job["featurize_images_per_second"] / job["cores"]
    record(kind, {
        "megapixels": round(median(pixels), 3), "megabytes": round(median(sizes), 4),
        "images_per_second_per_core": round(per_core, 2), "engine": job["engine"]["name"],
        "image_size": image_size,
        "measured": f"{bench} on {time.strftime('%Y-%m-%d')}, {job['images']} images, "
                    f"{job['cores']} cores, {RATE_FILE.relative_to(REPO)}",
    })
    print(f"featurize rate ({kind}) {per_core:.1f} images/s per core -> {RATE_FILE} "
          f"(make estimate)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--small", type=int, default=500, help="second job run for RSS (0: skip)")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--work", default=str(REPO / "build" / "bench"))
    p.add_argument("--extra", default="{}", help="JSON of FeaturizeConfig fields for the job")
    p.add_argument("--image-size", type=int, default=224, help="network input size (both)")
    p.add_argument("--engine", choices=("openvino", "tensorflow"), default="openvino")
    p.add_argument("--no-tf-ceiling", action="store_true",
                   help="skip the TensorFlow ceiling printed beside an openvino run")
    args = p.parse_args()
    args.extra = json.dumps({**json.loads(args.extra), "image_size": args.image_size,
                             "engine": args.engine})
    work = Path(args.work)
    images, source = prepare(args.n, work / "images")
    print(f"bench: {source}; weights {args.weights}; image size {args.image_size}; "
          f"{os.cpu_count()} cores", flush=True)

    print(f"[1/3] ceiling: one plain Python process, {args.engine}", flush=True)
    ceiling_args = ["--images", str(images), "--out", str(work / "ceiling"), "--weights",
                    args.weights, "--image-size", str(args.image_size)]
    ceiling, _ = run_child("bench.ceiling", [*ceiling_args, "--engine", args.engine])
    tf_ceiling = None
    if args.engine != "tensorflow" and not args.no_tf_ceiling:
        print("[1b/3] ceiling: one plain Python process, tensorflow (for comparison)",
              flush=True)
        tf_ceiling, _ = run_child("bench.ceiling", [*ceiling_args, "--engine", "tensorflow"])
    print("[2/3] job: featurize_images on local Spark", flush=True)
    job, rss = run_child("bench.job", ["--images", str(images), "--out", str(work / "run"),
                                       "--weights", args.weights, "--extra", args.extra],
                         sample_rss=True)
    small = None
    if args.small:
        small_images, _ = prepare(args.small, work / "images")
        print(f"[3/3] job on {args.small} images (worker memory at a smaller input)", flush=True)
        small = run_child("bench.job", ["--images", str(small_images), "--out",
                                        str(work / "run-small"), "--weights", args.weights,
                                        "--extra", args.extra], sample_rss=True)

    print()
    print(f"{'':28}{'ceiling':>12}{'job':>12}")
    print(f"{'images':28}{ceiling['images']:>12}{job['images']:>12}")
    print(f"{'end to end (s)':28}{ceiling['seconds']:>12.1f}{job['seconds']:>12.1f}")
    print(f"{'images/second':28}{ceiling['images_per_second']:>12.1f}"
          f"{job['images_per_second']:>12.1f}")
    print(f"{'PCA k':28}{ceiling['pca_k']:>12}{job['pca_k']:>12}")
    print("ceiling stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in ceiling["stages"].items())
          + f"; inference via {ceiling['method']}; peak RSS {ceiling['peak_rss_mb']:.0f} MB")
    print("job stages (s):     " + ", ".join(f"{k} {v:.2f}" for k, v in job["stages"].items()
                                              if k != "total")
          + f"; {job['partitions']} partitions")
    if tf_ceiling:
        print(f"tensorflow ceiling: {tf_ceiling['seconds']:.1f} s, "
              f"{tf_ceiling['images_per_second']:.1f} images/s "
              f"({tf_ceiling['method']}), peak RSS {tf_ceiling['peak_rss_mb']:.0f} MB; "
              f"{args.engine} ceiling / tensorflow ceiling: "
              f"{ceiling['images_per_second'] / tf_ceiling['images_per_second']:.2f}")
    print(f"job engine: {job['engine']['name']} {job['engine']['version']} "
          f"{job['engine']['precision']}")
    print(f"job Python workers peak RSS: {rss['max_mb']:.0f} MB at {job['images']} images"
          + (f", {small[1]['max_mb']:.0f} MB at {small[0]['images']} images "
             f"(ratio {rss['max_mb'] / small[1]['max_mb']:.2f})" if small else ""))
    write_rate(job, args.image_size, images)
    ratio = job["images_per_second"] / ceiling["images_per_second"]
    print(f"ratio job/ceiling: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
