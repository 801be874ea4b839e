"""``make bench-scale``: the driver's cost as the number of input files grows.

    python -m bench.scale [--n 10000,100000] [--real 300] [--no-resume] [--input-list]

For each N: a folder of N tiny files named ``.jpg`` that are not images (they cost no
CNN time and become ``not_an_image`` rows, so every stage runs over N rows) plus
``--real`` digits of the embedded sample, then

1. the featurize job (first run) and
2. the same job with ``--resume`` over the unchanged folder,

each as its own process (bench/job.py, executors in their own JVM) while the driver's
peak RSS is sampled: the Python driver and its JVM apart. Prints per-stage seconds, the peaks, Spark's "task of very
large size" warnings, and the growth per file between consecutive N. Inputs are written
under build/bench/scale/, never into git.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.images import REPO
from bench.run import _children

ROOT = REPO / "build" / "bench" / "scale"
STAGES = ("list_inputs", "plan_resume", "wait_warm_up", "featurize", "errors_write",
          "pca_fit", "pca_write", "total")


def write_list(images: Path) -> Path:
    """A text ``--input-list`` of every file under ``images`` (paths relative to it)."""
    listing = images.parent / f"{images.name}.txt"
    if not listing.exists():
        with open(listing, "w") as fh:
            for path in sorted(images.rglob("*.*")):
                if path.is_file() and not path.name.startswith("."):
                    fh.write(path.relative_to(images).as_posix() + "\n")
    return listing


def prepare(n: int, real: int) -> Path:
    """``n`` tiny non-images in 10 label folders plus ``real`` sample digits."""
    from featurize.inputs.sample import write_sample

    dest = ROOT / f"files-{n}-{real}"
    if (dest / ".done").exists():
        return dest
    for i in range(10):
        (dest / f"c{i}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (dest / f"c{i % 10}" / f"f{i:08d}.jpg").write_bytes(b"not an image %d" % i)
    if real:
        write_sample(str(dest / "digits"), per_class=max(real // 10, 1), with_broken=False)
    (dest / ".done").write_text("")
    return dest


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


class DriverRss:
    """Peak RSS (VmHWM) of the driver's Python process and of its JVM: the java child of
    that process (the executors' JVMs are the driver JVM's own children)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = {"python": 0, "jvm": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @staticmethod
    def _hwm(pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak["python"] = max(self.peak["python"], self._hwm(self.pid))
                for child in _children(self.pid):
                    cmd = Path(f"/proc/{child}/cmdline").read_bytes()
                    if cmd.split(b"\0")[0].endswith(b"java") and _parent(child) == self.pid:
                        self.peak["jvm"] = max(self.peak["jvm"], self._hwm(child))
            except OSError:
                pass
            self._stop.wait(0.2)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {k: v / 1024 for k, v in self.peak.items()}


#: Executors in their own JVM (1 worker, 2 cores, 4 GB), so the driver's JVM is measured
#: alone, as on a cluster.
MASTER = "local-cluster[1,2,4096]"


def run_job(images: Path, out: Path, weights: str, resume: bool,
            input_list: Path | None = None, driver_memory: str = "4g") -> dict:
    extra = {"pca_k": 8, **({"input_list": str(input_list)} if input_list else {})}
    args = [sys.executable, "-m", "bench.job", "--images", str(images), "--out", str(out),
            "--weights", weights, "--extra", json.dumps(extra), "--master", MASTER,
            "--driver-memory", driver_memory]
    if resume:
        args.append("--resume")
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    rss = DriverRss(proc.pid)
    out_text, err_text = proc.communicate()
    peaks = rss.stop()
    last = [ln for ln in out_text.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not last:
        sys.stderr.write(err_text[-4000:])
        raise SystemExit(f"bench.job failed (exit {proc.returncode})")
    result = json.loads(last[-1])
    big = [int(m) for m in re.findall(r"task of very large size \((\d+)(?:\.\d+)? KiB\)",
                                      err_text)]
    result.update(driver_python_mb=peaks["python"], driver_jvm_mb=peaks["jvm"],
                  large_tasks_kib=big)
    return result


def line(n: int, what: str, r: dict) -> str:
    stages = r["stages"]
    cells = " ".join(f"{s}={stages[s]:.1f}" for s in STAGES if s in stages)
    cells += f" wall={r['seconds']:.1f}"
    big = f"; large tasks {max(r['large_tasks_kib'])} KiB" if r["large_tasks_kib"] else ""
    return (f"N={n:>9,} {what:<6} {cells}; driver JVM {r['driver_jvm_mb']:.0f} MB, "
            f"Python {r['driver_python_mb']:.0f} MB{big}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", default="10000,100000", help="comma-separated file counts")
    p.add_argument("--real", type=int, default=300, help="real images beside them")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--driver-memory", default="4g",
                   help="the driver's heap (EMR's default cluster-mode driver: 1g)")
    p.add_argument("--input-list", action="store_true",
                   help="give the files as a text --input-list instead of listing the folder")
    args = p.parse_args()
    results: dict[int, dict[str, dict]] = {}
    for n in (int(x) for x in args.n.split(",")):
        t0 = time.perf_counter()
        images = prepare(n, args.real)
        print(f"N={n:,}: inputs ready in {time.perf_counter() - t0:.0f} s ({images})",
              flush=True)
        listing = write_list(images) if args.input_list else None
        out = ROOT / f"run-{n}{'-list' if listing else ''}"
        results[n] = {"first": run_job(images, out, args.weights, False, listing,
                                       args.driver_memory)}
        print(line(n, "first", results[n]["first"]), flush=True)
        if not args.no_resume:
            results[n]["resume"] = run_job(images, out, args.weights, True, listing,
                                           args.driver_memory)
            print(line(n, "resume", results[n]["resume"]), flush=True)
    ns = sorted(results)
    for a, b in zip(ns, ns[1:]):
        for what in results[a]:
            ra, rb = results[a][what], results[b][what]
            per = {k: (rb[k] - ra[k]) * 1024 * 1024 / (b - a)
                   for k in ("driver_jvm_mb", "driver_python_mb")}
            listing = (rb["stages"]["list_inputs"] - ra["stages"]["list_inputs"]) / (b - a)
            print(f"growth {a:,} -> {b:,} ({what}): driver JVM {per['driver_jvm_mb']:.0f} "
                  f"B/file, Python {per['driver_python_mb']:.0f} B/file; list_inputs "
                  f"{listing * 1000:.4f} ms/file; wall "
                  f"{(rb['seconds'] - ra['seconds']) / (b - a) * 1000:.4f} ms/file",
                  flush=True)
    print(json.dumps({str(n): v for n, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
