"""One photo: ``featurize.photo.predict_one`` against the Spark predict job, same run, same photo.

``python -m bench.one_photo --run RUN --images DIR [--n 100]`` (``make bench-one``):

1. start-up: a fresh ``python -m featurize.photo.predict_one --run RUN IMAGE`` process, wall
   time to its answer (imports, the run's files, weights, the engine compiled, one photo);
2. per photo: one :class:`~featurize.photo.predict_one.Predictor` in this process answers
   ``--n`` photos one at a time (read, decode, CNN, classifier); median and 95th
   percentile;
3. the baseline: ``spark-submit jobs/predict_images.py`` on a folder holding that one
   photo, wall time.

Prints ``ratio spark-predict/predict_one (one photo, cold): X`` last.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXTENSIONS = (".jpg", ".jpeg", ".png")


def _wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a trained run directory")
    p.add_argument("--images", required=True, help="a folder of photos (searched recursively)")
    p.add_argument("--n", type=int, default=100, help="photos answered one at a time")
    args = p.parse_args()
    photos = sorted(f for f in Path(args.images).rglob("*") if f.suffix.lower() in EXTENSIONS)
    if not photos:
        raise SystemExit(f"no photos under {args.images}")
    first = photos[0]

    cold = _wall([sys.executable, "-m", "featurize.photo.predict_one", "--run", args.run, str(first)])

    from featurize.photo.predict_one import Predictor

    t = time.perf_counter()
    predictor = Predictor(args.run)
    loaded = time.perf_counter() - t
    times = []
    for f in (photos * (args.n // len(photos) + 1))[:args.n]:
        t = time.perf_counter()
        predictor.predict(f.read_bytes(), str(f))
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in" / "x"
        folder.mkdir(parents=True)
        shutil.copyfile(first, folder / first.name)
        spark = _wall([str(Path(sys.executable).parent / "spark-submit"), "--master", "local[*]",
                       "--driver-memory", "4g", "--conf", "spark.log.level=WARN",
                       "jobs/predict_images.py", "--run", args.run, "--input",
                       str(folder.parent), "--output", str(Path(tmp) / "out")])

    result = {"run": args.run, "engine": predictor.engine["name"],
              "predict_one_process_s": round(cold, 2), "predictor_load_s": round(loaded, 2),
              "per_photo_ms_median": round(float(np.median(ms)), 1),
              "per_photo_ms_p95": round(float(np.percentile(ms, 95)), 1), "photos": len(ms),
              "spark_predict_process_s": round(spark, 2)}
    print(f"predict_one, one photo in a fresh process: {cold:.2f} s "
          f"(of which loading the run and compiling the engine in-process: {loaded:.2f} s)")
    print(f"per photo after start-up: median {result['per_photo_ms_median']} ms, "
          f"p95 {result['per_photo_ms_p95']} ms over {len(ms)} photos")
    print(f"spark-submit predict_images.py, the same photo: {spark:.1f} s")
    print(json.dumps(result))
    print(f"ratio spark-predict/predict_one (one photo, cold): {spark / cold:.1f}")


if __name__ == "__main__":
    main()
