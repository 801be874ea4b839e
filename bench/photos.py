"""``make bench-photos``: the featurize stage on phone-size photos against the same
photos at 448×336, and against the bare model in one process, in one run.

    python -m bench.photos [--n 400] [--rounds 1] [--weights imagenet] [--no-full] [--no-scan]

The photos: N of the shared clothing photos (400 px on their short side; round-robin over
the classes, file-name order) upscaled to 3024 px on the short side (4032×3024, a 12 MP
phone frame) with bicubic resampling, plus Gaussian sensor-like noise (σ = 4 grey
levels, a 1024-px tile drawn per photo), saved as JPEG quality 90: ~1.9 MB each, the
size and decode cost of a phone's JPEG. The small set is each phone photo resized to 336 px on its short side
(448×336), quality 90. Without ../shared, generated 3:4 patterns stand in. Both are
written once under build/bench/photos/ and reused.

1. the ceiling (bench/ceiling.py) on the phone photos, the default decode;
2. the job (bench/job.py) on the small photos, then on the phone photos;
3. unless ``--no-full``: the job on the phone photos with ``--decode full`` (every pixel
   decoded, as before draft), the baseline the draft decode is measured against;
4. unless ``--no-scan``: the job on the phone photos with ``--reader scan`` (the bytes
   read by Spark's binaryFile scan and shipped to the workers, as before the workers
   read them), the baseline the workers' reads are measured against.

With ``--rounds R`` all of it R times, interleaved. Prints each featurize stage's
images/s (the manifest's ``images_per_second.featurize``; the median over the rounds),
the Python workers' peak RSS, and last exactly ``ratio phone/small: X.XX``; records the
small and phone rates per core for ``make estimate`` (build/bench-rate.json).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path
from statistics import median

import numpy as np
from PIL import Image

from bench.images import REPO
from bench.run import run_child, write_rate

CLOTHING = Path(os.environ.get("FEATURIZE_SHARED_DIR", str(REPO.parent / "shared"))) \
    / "data" / "clothing-small"
PHONE_SHORT_SIDE = 3024
SMALL_SHORT_SIDE = 336
NOISE_SIGMA = 4.0
QUALITY = 90


def _noise_tile(seed: int) -> np.ndarray:
    """1024×1024×3 of Gaussian noise, σ = :data:`NOISE_SIGMA`, rounded to int16."""
    rng = np.random.default_rng(seed)
    return np.rint(rng.standard_normal((1024, 1024, 3), dtype=np.float32)
                   * NOISE_SIGMA).astype(np.int16)


def phone_photo(image: Image.Image, seed: int, short_side: int = PHONE_SHORT_SIDE) -> bytes:
    """``image`` as a phone would save it: 3024 px on the short side, bicubic, with
    Gaussian noise of σ = :data:`NOISE_SIGMA` (a 1024-px tile drawn from ``seed``,
    repeated), JPEG quality 90."""
    image = image.convert("RGB")
    w, h = image.size
    scale = short_side / min(w, h)
    big = image.resize((round(w * scale), round(h * scale)), Image.BICUBIC)
    pixels = np.asarray(big, dtype=np.int16)
    rows, cols = pixels.shape[:2]
    noise = np.tile(_noise_tile(seed), (-(-rows // 1024), -(-cols // 1024), 1))
    pixels = pixels + noise[:rows, :cols]
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=QUALITY)
    return buf.getvalue()


def small_photo(phone: bytes) -> bytes:
    """The phone photo at :data:`SMALL_SHORT_SIDE` px on its short side, quality 90."""
    image = Image.open(io.BytesIO(phone)).convert("RGB")
    w, h = image.size
    scale = SMALL_SHORT_SIDE / min(w, h)
    buf = io.BytesIO()
    image.resize((round(w * scale), round(h * scale)), Image.BILINEAR).save(
        buf, "JPEG", quality=QUALITY)
    return buf.getvalue()


def sources(n: int) -> list[tuple[str, str, Image.Image | Path]]:
    """(class, name, source) for ``n`` photos: clothing photos round-robin over the
    classes in file-name order (all splits), else generated 3:4 patterns."""
    if CLOTHING.is_dir():
        by_class: dict[str, list[Path]] = {}
        for f in sorted(CLOTHING.glob("*/*/*.jpg")):
            by_class.setdefault(f.parent.name, []).append(f)
        picked: list[tuple[str, str, Image.Image | Path]] = []
        depth = 0
        while len(picked) < n and depth < max(map(len, by_class.values())):
            for cls in sorted(by_class):
                if len(picked) < n and depth < len(by_class[cls]):
                    picked.append((cls, by_class[cls][depth].stem, by_class[cls][depth]))
            depth += 1
        if len(picked) < n:
            raise SystemExit(f"--n {n}: the clothing set has {len(picked)} photos")
        return picked
    out: list[tuple[str, str, Image.Image | Path]] = []
    yy, xx = np.mgrid[0:400, 0:300]
    for i in range(n):
        cls = i % 10
        base = np.stack([127 + 120 * np.sin(xx / (7 + cls) + i), 127 + 120 * np.cos(yy / (9 + cls)),
                         127 + 120 * np.sin((xx + yy) / (11 + cls))], axis=-1)
        out.append((f"class{cls}", f"pattern{i:05d}",
                    Image.fromarray(base.astype(np.uint8), "RGB")))
    return out


def prepare(n: int, root: Path) -> tuple[Path, Path, str]:
    """The phone and small folders with exactly ``n`` photos each (reused when
    complete); returns (phone, small, description)."""
    phone_dir, small_dir = root / f"phone-{n}", root / f"small-{n}"
    picked = sources(n)
    what = ("clothing photos from " + str(CLOTHING)) if CLOTHING.is_dir() else \
        "generated 300x400 patterns (../shared/data not present)"
    if sum(1 for _ in phone_dir.glob("*/*.jpg")) == n == sum(1 for _ in small_dir.glob("*/*.jpg")):
        return phone_dir, small_dir, f"{n} {what}"
    print(f"bench-photos: writing {n} phone-size photos under {root} (once)", flush=True)
    for i, (cls, name, src) in enumerate(picked):
        image = Image.open(src) if isinstance(src, Path) else src
        phone = phone_photo(image, seed=i)
        for folder, data in ((phone_dir, phone), (small_dir, small_photo(phone))):
            (folder / cls).mkdir(parents=True, exist_ok=True)
            (folder / cls / f"{name}.jpg").write_bytes(data)
    return phone_dir, small_dir, f"{n} {what}"


def _megabytes(folder: Path) -> float:
    files = list(folder.glob("*/*.jpg"))
    return sum(f.stat().st_size for f in files) / len(files) / 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--work", default=str(REPO / "build" / "bench" / "photos"))
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat everything; the medians are printed (each round beside)")
    p.add_argument("--no-full", action="store_true",
                   help="skip the --decode full run on the phone photos")
    p.add_argument("--no-scan", action="store_true",
                   help="skip the --reader scan run on the phone photos")
    args = p.parse_args()
    work = Path(args.work)
    phone, small, what = prepare(args.n, work)
    with Image.open(next(phone.glob("*/*.jpg"))) as im:
        phone_size = "x".join(map(str, im.size))
    print(f"bench-photos: {what}; phone {phone_size}, {_megabytes(phone):.2f} MB a photo "
          f"on average; small {_megabytes(small) * 1000:.0f} kB; {os.cpu_count()} cores",
          flush=True)

    def job(images: Path, name: str, extra: dict) -> tuple[dict, dict]:
        print(f"job: {name}", flush=True)
        return run_child("bench.job", ["--images", str(images), "--out", str(work / name),
                                       "--weights", args.weights, "--extra",
                                       json.dumps(extra)], sample_rss=True)

    runs: list[tuple[str, Path, dict]] = [("small", small, {}), ("phone", phone, {})]
    if not args.no_full:
        runs.append(("phone, --decode full", phone, {"decode": "full"}))
    if not args.no_scan:
        runs.append(("phone, --reader scan", phone, {"reader": "scan"}))
    ceilings: list[float] = []
    results: dict[str, list[tuple[dict, dict]]] = {name: [] for name, _, _ in runs}
    for r in range(args.rounds):
        print(f"round {r + 1} of {args.rounds}: ceiling (phone photos, one plain Python "
              f"process), then the job on each set", flush=True)
        ceiling, _ = run_child("bench.ceiling", ["--images", str(phone), "--out",
                                                 str(work / "ceiling"), "--weights",
                                                 args.weights])
        ceilings.append(ceiling["images"] / ceiling["stages"]["featurize"])
        for name, images, extra in runs:
            results[name].append(job(images, "run-" + name.split(",")[0], extra))

    def rate(name: str) -> float:
        return median(out["featurize_images_per_second"] for out, _ in results[name])

    print()
    print(f"{'featurize stage':30}{'images/s':>10}{'workers peak RSS MB':>22}  (median of "
          f"{args.rounds}; each round)")
    print(f"{'ceiling (phone)':30}{median(ceilings):>10.1f}{'':>22}  "
          + ", ".join(f"{c:.1f}" for c in ceilings))
    for name, _, _ in runs:
        peak = max(rss["max_mb"] for _, rss in results[name])
        print(f"{'job (' + name + ')':30}{rate(name):>10.1f}{peak:>22.0f}  "
              + ", ".join(f"{o['featurize_images_per_second']:.1f}" for o, _ in results[name]))
    if not args.no_full:
        print(f"ratio draft/full (phone): {rate('phone') / rate('phone, --decode full'):.2f}")
    if not args.no_scan:
        print(f"ratio workers/scan (phone): "
              f"{rate('phone') / rate('phone, --reader scan'):.2f}")
    print(f"ratio job/ceiling (phone): {rate('phone') / median(ceilings):.2f}")
    def median_run(name: str) -> dict:
        ranked = sorted(results[name], key=lambda r: r[0]["featurize_images_per_second"])
        return ranked[len(ranked) // 2][0]

    write_rate(median_run("small"), 224, small, "small photos", "make bench-photos")
    write_rate(median_run("phone"), 224, phone, "phone photos", "make bench-photos")
    print(f"ratio phone/small: {rate('phone') / rate('small'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
