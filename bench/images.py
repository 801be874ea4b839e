"""The benchmark's images: N real Fruits-360 photos from ../shared when present (more
than the set holds: the set repeated under distinct names), else N generated 100x100
JPEGs in 10 class folders. Linked/written under build/bench/, never into git."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FRUITS = Path(os.environ.get("FEATURIZE_SHARED_DIR", str(REPO.parent / "shared"))) \
    / "data" / "fruits360-small"


def _generated(i: int) -> Image.Image:
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[0:100, 0:100]
    cls = i % 10
    base = np.stack([127 + 120 * np.sin(xx / (3 + cls) + i), 127 + 120 * np.cos(yy / (4 + cls)),
                     127 + 120 * np.sin((xx + yy) / (5 + cls))], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255)
                           .astype(np.uint8), "RGB")


def prepare(n: int, root: Path) -> tuple[Path, str]:
    """Folder with exactly ``n`` images; returns (folder, description)."""
    if FRUITS.is_dir():
        classes = sorted(p for p in FRUITS.iterdir() if p.is_dir())
        per_class = {c: sorted(c.glob("*.jpg")) for c in classes}
        total = sum(len(v) for v in per_class.values())
        dest = root / f"fruits-{n}"
        rounds = -(-n // total)
        source = (f"{n} Fruits-360 images from {FRUITS} ({len(classes)} classes"
                  + (f"; the {total} repeated under distinct names, hard links" if rounds > 1
                     else "") + ")")
        if _count(dest) == n:
            return dest, source
        shutil.rmtree(dest, ignore_errors=True)
        picked = 0
        for r in range(rounds):
            depth = 0
            while picked < min(n, (r + 1) * total) and depth < max(map(len, per_class.values())):
                for c in classes:  # round-robin over classes, in file-name order
                    if picked < n and depth < len(per_class[c]):
                        src = per_class[c][depth]
                        name = src.name if r == 0 else f"{src.stem}-r{r}{src.suffix}"
                        (dest / c.name).mkdir(parents=True, exist_ok=True)
                        _link_or_copy(src, dest / c.name / name)
                        picked += 1
                depth += 1
        return dest, source
    dest = root / f"generated-{n}"
    source = f"{n} generated 100x100 JPEG images (10 classes; ../shared/data not present)"
    if _count(dest) == n:
        return dest, source
    shutil.rmtree(dest, ignore_errors=True)
    for i in range(n):
        (dest / f"class{i % 10}").mkdir(parents=True, exist_ok=True)
        _generated(i).save(dest / f"class{i % 10}" / f"img{i:05d}.jpg", quality=90)
    return dest, source


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copyfile(src, dst)


def _count(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder)) if folder.is_dir() else -1


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
