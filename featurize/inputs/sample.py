"""The embedded sample: handwritten digits that scikit-learn ships, rendered to PNGs.

Needs nothing outside the repository and its pinned packages, so ``make run-local``
works on a fresh machine::

    python -m featurize.inputs.sample build/sample --per-class 60

writes ``<out>/<digit>/<digit>_<n>.png`` (64×64 grayscale, dark ink on white), plus one
deliberately truncated file, ``<out>/7/broken_upload.png``, so the sample run also
shows a bad file landing in ``errors/`` while the job carries on.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

BROKEN_FILE = os.path.join("7", "broken_upload.png")


def render_digit(pixels: np.ndarray, size: int = 64) -> Image.Image:
    """An 8×8 digits array (0..16) → a ``size``×``size`` grayscale image."""
    ink = np.clip(pixels.reshape(8, 8) / 16.0, 0.0, 1.0)
    small = Image.fromarray(np.rint(255 * (1.0 - ink)).astype(np.uint8), "L")
    return small.resize((size, size), Image.BILINEAR)


def write_sample(out_dir: str, per_class: int = 60, size: int = 64,
                 with_broken: bool = True, offset: int = 0) -> dict[str, int]:
    """Write the sample; returns ``{label: number of good images}``.

    Images ``offset`` to ``offset + per_class`` of each digit, in the dataset's order, so
    the sample is identical on every machine (a different ``offset`` gives new images
    of the same classes, e.g. for the predict job).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    counts: dict[str, int] = {}
    for label in range(10):
        idx = np.flatnonzero(digits.target == label)[offset:offset + per_class]
        folder = os.path.join(out_dir, str(label))
        os.makedirs(folder, exist_ok=True)
        for n, i in enumerate(idx):
            render_digit(digits.data[i], size).save(
                os.path.join(folder, f"{label}_{offset + n:03d}.png"))
        counts[str(label)] = len(idx)
    if with_broken:
        buf = io.BytesIO()
        render_digit(digits.data[0], size).save(buf, "PNG")
        data = buf.getvalue()
        with open(os.path.join(out_dir, BROKEN_FILE), "wb") as fh:
            fh.write(data[: len(data) // 2])
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--per-class", type=int, default=60)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--offset", type=int, default=0, help="skip this many images per class")
    p.add_argument("--no-broken", action="store_true", help="omit the truncated file")
    args = p.parse_args(argv)
    counts = write_sample(args.out_dir, args.per_class, args.size, not args.no_broken,
                          args.offset)
    total = sum(counts.values())
    print(f"sample: {total} images in {len(counts)} classes"
          f"{' + 1 truncated file' if not args.no_broken else ''} under {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
