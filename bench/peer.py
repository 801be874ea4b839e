"""The job against the peers a user would pick instead, whole processes, same images.

    python -m bench.peer [--n 3000] [--photos N] [--peers spark,daft,ray] [--k 300]

On the same images (N Fruits-360 thumbnails; with ``--photos N``, N phone-size photos
made as ``make bench-photos`` makes them), one after the other, each timed from launch
to exit (interpreter or JVM start and all) with the peak resident memory of its whole
process tree (sampled every 0.25 s):

1. ``spark`` (:mod:`bench.peer_job`): pyspark's ``predict_batch_udf`` around Keras +
   Spark ML StandardScaler/PCA with k components, under spark-submit;
2. ``daft`` (:mod:`bench.peers.daft_job`) and ``ray`` (:mod:`bench.peers.ray_job`): Daft
   and Ray Data reading, decoding and resizing, a Keras class UDF / actor per core, then
   scikit-learn's StandardScaler + PCA(k). Each in its own virtualenv under
   build/peers/, created from ``bench/peers/<peer>-requirements.txt`` when missing;
3. ``jobs/featurize_images.py`` with its defaults (``--pca-k`` = the same k, so all fit
   and write the same amount).

Prints images/s and the job's ratio to each peer (peer seconds ÷ job seconds: above 1.00
the job is faster); the last line is exactly ``ratio job/strongest peer: X.XX``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.images import REPO, prepare

SUBMIT = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[*]",
          "--driver-memory", "4g", "--conf", "spark.ui.enabled=false"]
PEERS = ("spark", "daft", "ray")
VENVS = REPO / "build" / "peers"


class TreeRss:
    """The peak of the summed resident memory of a process and its descendants."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from bench.run import _children

        while not self._stop.is_set():
            total = 0
            for pid in {self.pid} | _children(self.pid):
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
                except OSError:
                    continue
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(0.25)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def peer_python(peer: str) -> str:
    """The peer's own interpreter, its virtualenv made from the pinned list if missing."""
    venv = VENVS / f"{peer}-venv"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    requirements = REPO / "bench" / "peers" / f"{peer}-requirements.txt"
    if not marker.is_file() or marker.read_text() != requirements.read_text():
        print(f"{peer}: creating {venv} from {requirements.relative_to(REPO)}", flush=True)
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                       check=True)
        marker.write_text(requirements.read_text())
    return str(python)


def timed(name: str, cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from launch to exit, and the process tree's peak RSS in MB."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    rss = TreeRss(proc.pid)
    out, err = proc.communicate()
    seconds, peak = time.perf_counter() - t0, rss.stop()
    if proc.returncode != 0:
        sys.stderr.write(out[-3000:] + err[-3000:])
        raise SystemExit(f"{name} failed (exit {proc.returncode})")
    print(f"{name}: {seconds:.1f} s, peak memory {peak:.0f} MB", flush=True)
    return seconds, peak


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=3000, help="thumbnails")
    p.add_argument("--photos", type=int, default=0,
                   help="instead of thumbnails, this many phone-size photos")
    p.add_argument("--k", type=int, default=300, help="PCA components, all sides")
    p.add_argument("--peers", default=",".join(PEERS))
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--work", default=str(REPO / "build" / "bench"))
    args = p.parse_args()
    work = Path(args.work)
    if args.photos:
        from bench.photos import prepare as prepare_photos

        images, _, source = prepare_photos(args.photos, work / "photos")
        n = args.photos
    else:
        images, source = prepare(args.n, work / "images")
        n = args.n
    peers = [x for x in args.peers.split(",") if x]
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise SystemExit(f"--peers: unknown {sorted(unknown)}; choose from {PEERS}")
    print(f"peer bench: {source}; {os.cpu_count()} cores; PCA k={args.k}", flush=True)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    results: dict[str, tuple[float, float]] = {}
    for peer in peers:
        out = work / f"peer-{peer}"
        shutil.rmtree(out, ignore_errors=True)
        if peer == "spark":
            cmd = [*SUBMIT, "bench/peer_job.py"]
            label = "spark (predict_batch_udf + Spark ML scaler/PCA)"
        else:
            cmd = [peer_python(peer), f"bench/peers/{peer}_job.py"]
            label = f"{peer} (its reader and decoder, Keras UDF per core, sklearn PCA)"
        results[peer] = timed(label, [*cmd, "--input", str(images), "--output", str(out),
                                      "--k", str(args.k)], env)
    shutil.rmtree(work / "peer-job", ignore_errors=True)
    job = timed("job (jobs/featurize_images.py)",
                [*SUBMIT, "jobs/featurize_images.py", "--input", str(images), "--output",
                 str(work / "peer-job"), "--weights", args.weights, "--pca-k", str(args.k)],
                env)
    print(f"\n{'':10}{'images/s':>10}{'peak MB':>10}{'job is':>10}")
    print(f"{'job':10}{n / job[0]:>10.1f}{job[1]:>10.0f}")
    for peer, (seconds, peak) in results.items():
        print(f"{peer:10}{n / seconds:>10.1f}{peak:>10.0f}{seconds / job[0]:>9.2f}x")
    strongest = min(results.values())[0]
    print(json.dumps({"images": n, "job": job, **results}))
    print(f"ratio job/strongest peer: {strongest / job[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
