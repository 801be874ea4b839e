"""What the draft decode costs in accuracy, on the clothing photos and on phone-size
versions of them (docs/preprocessing.md).

    python -m bench.photo_accuracy [--weights imagenet]

A classifier (StandardScaler + multinomial logistic regression, scikit-learn, C = 1) is
trained on the features of the clothing set's train + validation photos as they are
(400 px on the short side: the draft decode reads them whole, so both decodes give the
same pixels, checked here). It is then scored on the test split three ways: the photos as
they are; their phone-size versions (``bench.photos.phone_photo``: 3024 px short side,
noise, JPEG 90) decoded in full; the same files with the draft decode. Features come from
the job's OpenVINO IR in this process. Prints one line per test set, then the accuracy
and macro-F1 differences draft − full.
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench.photos import CLOTHING, phone_photo
from featurize.model.preprocess import Preprocessing, preprocess_image

FULL, DRAFT = Preprocessing(decode="full"), Preprocessing()


def _pixels(task: tuple[str, int, bool]) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(draft pixels, full pixels or None, same) for one photo; phone-size when asked."""
    path, seed, phone = task
    data = Path(path).read_bytes()
    if phone:
        data = phone_photo(Image.open(path), seed)
    draft, full = preprocess_image(data, preprocessing=DRAFT), \
        preprocess_image(data, preprocessing=FULL)
    return draft, (full if phone else None), bool(np.array_equal(draft, full))


def features(files: list[Path], phone: bool, extract, workers: int) -> tuple[np.ndarray, ...]:
    draft_x, full_x, same = [], [], []
    with ProcessPoolExecutor(workers) as pool:
        tasks = [(str(f), i, phone) for i, f in enumerate(files)]
        for d, f, s in pool.map(_pixels, tasks, chunksize=8):
            draft_x.append(d)
            full_x.append(d if f is None else f)
            same.append(s)
    return extract(np.stack(draft_x)), extract(np.stack(full_x)), np.array(same)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    if not CLOTHING.is_dir():
        raise SystemExit(f"{CLOTHING} is not present: this measurement needs the clothing set")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from featurize.model.engines.openvino_engine import OpenVinoExtractor, cached_ir
    from featurize.model.weights import resolve_weights

    weights = resolve_weights(args.weights)
    ir = cached_ir(weights, 224)
    extractor = OpenVinoExtractor(16, 2, 224, "f32")
    extractor.load((ir.xml, ir.bin), ir.sha256)

    train = sorted(CLOTHING.glob("train/*/*.jpg")) + sorted(CLOTHING.glob("validation/*/*.jpg"))
    test = sorted(CLOTHING.glob("test/*/*.jpg"))
    t0 = time.perf_counter()
    train_draft, _, train_same = features(train, False, extractor, args.workers)
    test_draft, _, test_same = features(test, False, extractor, args.workers)
    phone_draft, phone_full, _ = features(test, True, extractor, args.workers)
    print(f"features in {time.perf_counter() - t0:.0f} s; the photos as they are: draft "
          f"decode identical to full for {train_same.sum() + test_same.sum()} of "
          f"{len(train) + len(test)}")
    labels = lambda files: np.array([f.parent.name for f in files])  # noqa: E731
    y_train, y_test = labels(train), labels(test)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
    model.fit(train_draft, y_train)
    scores = {}
    for name, x in [("test photos as they are", test_draft),
                    ("phone-size, --decode full", phone_full),
                    ("phone-size, --decode draft", phone_draft)]:
        pred = model.predict(x)
        scores[name] = (accuracy_score(y_test, pred), f1_score(y_test, pred, average="macro"))
        print(f"{name:30} accuracy {scores[name][0]:.4f}  macro-F1 {scores[name][1]:.4f}  "
              f"({len(y_test)} photos)")
    rel = np.linalg.norm(phone_draft - phone_full, axis=1) / np.linalg.norm(phone_full, axis=1)
    print(f"feature distance draft vs full (phone-size, relative): median {np.median(rel):.4f},"
          f" p90 {np.percentile(rel, 90):.4f}, max {rel.max():.4f}")
    full, draft = scores["phone-size, --decode full"], scores["phone-size, --decode draft"]
    print(f"draft - full (phone-size): accuracy {100 * (draft[0] - full[0]):+.2f} points, "
          f"macro-F1 {100 * (draft[1] - full[1]):+.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
