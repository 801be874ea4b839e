"""Pictures of a run: explained variance, a 2-D projection, the confusion matrix, the
reliability diagram and the most confident mistakes; after ``make cluster-features``, the
clusters' map, silhouette and image grid (featurize/review/report_clusters.py). Used by
``make report`` and by ``notebooks/explore_run.ipynb``.

Reads a local run directory with pyarrow (no Spark needed)::

    python -m featurize.review.report runs/local      # writes runs/local/report/
"""
from __future__ import annotations

import argparse
import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from featurize.model.decode import ImageDecodeError
from featurize.model.preprocess import Preprocessing, decode_rgb
from featurize.review.report_clusters import FIGURES as CLUSTER_FIGURES
from featurize.review.report_clusters import load_clusters
from featurize.review.report_duplicates import load_duplicates, plot_duplicate_groups
from featurize.rundir import METRICS, RunDir, local_path


@dataclass
class RunData:
    """What a run directory holds, loaded for plotting."""

    path: str
    manifest: dict[str, Any]
    pca: pd.DataFrame
    metrics: dict[str, Any] | None
    test_predictions: pd.DataFrame | None


def _read_parquet(folder: str) -> pd.DataFrame | None:
    import pyarrow.parquet as pq

    if not os.path.isdir(folder):
        return None
    return pq.read_table(folder).to_pandas()


def load_run(run_dir: str) -> RunData:
    """Load manifest, ``pca/``, and (after training) metrics and test predictions."""
    run_dir = local_path(run_dir)
    paths = RunDir(run_dir)
    with open(paths.manifest, encoding="utf-8") as fh:
        manifest = json.load(fh)
    metrics = None
    metrics_path = paths.metrics
    if os.path.exists(metrics_path):
        with open(metrics_path, encoding="utf-8") as fh:
            metrics = json.load(fh)
    pca = _read_parquet(paths.pca)
    if pca is None:
        raise FileNotFoundError(f"{run_dir}/pca is missing: not a finished run")
    return RunData(run_dir, manifest, pca, metrics,
                   _read_parquet(paths.test_predictions))


def _figure(width: float = 6.0, height: float = 4.5) -> Any:
    # A bare Figure (no pyplot): no GUI backend, no global state, renders with Agg.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def to_png(fig: Any) -> bytes:
    """A figure as PNG bytes (for ``IPython.display.Image`` in notebooks)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_explained_variance(run: RunData) -> Any:
    """Cumulative explained variance against the number of components kept."""
    pca = run.manifest["pca"]
    cumulative = pca["cumulative_explained_variance"]
    fig = _figure()
    ax = fig.subplots()
    ks = np.arange(1, len(cumulative) + 1)
    ax.plot(ks, cumulative, marker="." if len(ks) < 60 else None)
    if pca.get("requested_variance"):
        ax.axhline(pca["requested_variance"], color="grey", linestyle="--",
                   label=f"target {pca['requested_variance']}")
        ax.legend(loc="lower right")
    ax.set_xlabel("number of components k")
    ax.set_ylabel("cumulative explained variance")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"PCA: k = {pca['k']} keeps {cumulative[-1]:.3f} of the variance")
    ax.grid(alpha=0.3)
    return fig


def plot_projection(run: RunData, max_points: int = 5000) -> Any:
    """First two PCA components, one colour per label."""
    df = run.pca.head(max_points)
    xy = np.stack(df["pca_features"].to_numpy())[:, :2] if len(df) else np.zeros((0, 2))
    fig = _figure(6.5, 5.0)
    ax = fig.subplots()
    labels = df["label"].fillna("(no label)").to_numpy()
    for label in sorted(set(labels)):
        mask = labels == label
        ax.scatter(xy[mask, 0], xy[mask, 1] if xy.shape[1] > 1 else np.zeros(mask.sum()),
                   s=8, alpha=0.7, label=label)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"{len(df)} images on the first two principal components")
    ax.legend(fontsize=7, markerscale=2, loc="best", ncol=2 if len(set(labels)) > 8 else 1)
    return fig


def plot_confusion(run: RunData) -> Any:
    """Confusion matrix of the test split (rows: true label, columns: predicted)."""
    if run.metrics is None:
        raise FileNotFoundError(f"{run.path}/{METRICS} is missing: train a classifier first")
    labels = run.metrics["labels"]
    matrix = np.asarray(run.metrics["test"]["confusion_matrix"])
    fig = _figure(1.2 + 0.55 * len(labels), 1.0 + 0.5 * len(labels))
    ax = fig.subplots()
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test accuracy {run.metrics['accuracy']:.3f}, "
                 f"macro-F1 {run.metrics['macro_f1']:.3f}")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def plot_reliability(run: RunData) -> Any:
    """Confidence against accuracy per confidence bin on the test split, before and after
    the temperature (``metrics.json``'s ``confidence.reliability``), with the bins'
    image counts below. A calibrated model's points lie on the diagonal."""
    conf = (run.metrics or {}).get("confidence")
    fig = _figure(9.0, 4.5)
    if not conf:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no calibration scores (trained before calibration existed,\n"
                "or no test image of a known label)", ha="center", va="center")
        ax.set_axis_off()
        return fig
    t = run.metrics["calibration"]["temperature"]
    for i, (side, title) in enumerate((("before", "before (T = 1)"),
                                       ("after", f"after (T = {t:.3f})"))):
        ax = fig.add_subplot(1, 2, i + 1)
        bins = conf["reliability"][side]
        filled = [b for b in bins if b["count"]]
        width = 1.0 / conf["bins"]
        ax.bar([b["lower"] for b in filled], [b["accuracy"] for b in filled], width=width,
               align="edge", color="#4c78a8", edgecolor="white", label="accuracy")
        ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o",
                color="#e45756", markersize=4, label="(mean confidence, accuracy)")
        ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
        for b in filled:
            ax.text(b["lower"] + width / 2, 0.02, str(b["count"]), ha="center", fontsize=6,
                    color="white" if (b["accuracy"] or 0) > 0.08 else "black")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ece = run.metrics["ece"][side]
        ax.set_title(f"{title}: ECE {ece:.3f}", fontsize=10)
        if i == 0:
            ax.legend(loc="upper left", fontsize=7)
    fig.suptitle(f"Reliability on the test split ({conf['images']} images, "
                 f"{conf['bins']} bins; bar labels: images per bin)", fontsize=10)
    fig.tight_layout()
    return fig


def confident_mistakes(run: RunData, n: int = 12) -> pd.DataFrame:
    """The ``n`` wrong test predictions with the highest confidence."""
    if run.test_predictions is None:
        return pd.DataFrame(columns=["path", "label", "predicted_label", "confidence"])
    df = run.test_predictions
    wrong = df[df["label"] != df["predicted_label"]]
    return wrong.sort_values("confidence", ascending=False).head(n).reset_index(drop=True)


def model_view(path: str, preprocessing: Preprocessing, height: int = 160) -> Any:
    """The original image (upright, RGB) with the region the model sees outlined, beside
    that region as the model sees it (:meth:`Preprocessing.fit`), both ``height`` high."""
    from PIL import Image, ImageDraw

    with open(local_path(path), "rb") as fh:
        original = decode_rgb(fh.read())
    seen = preprocessing.fit(original).resize((height, height), Image.BILINEAR)
    scale = height / original.size[1]
    shown = original.resize((max(1, round(original.size[0] * scale)), height), Image.BILINEAR)
    box = [v * scale for v in preprocessing.box(*original.size)]
    ImageDraw.Draw(shown).rectangle(box, outline=(255, 0, 0), width=2)
    pair = Image.new("RGB", (shown.size[0] + 4 + height, height), (255, 255, 255))
    pair.paste(shown, (0, 0))
    pair.paste(seen, (shown.size[0] + 4, 0))
    return pair


def plot_mistakes(run: RunData, n: int = 12) -> Any:
    """A grid of the most confident mistakes: each original with the region the model
    saw outlined, beside that region at the model's input (the crop, or the squash)."""
    mistakes = confident_mistakes(run, n)
    preprocessing = Preprocessing.from_manifest(run.manifest.get("preprocessing") or {})
    cols = 4
    rows = max(1, int(np.ceil(len(mistakes) / cols)))
    fig = _figure(2.4 * cols, 2.6 * rows)
    if mistakes.empty:
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes on the test split", ha="center", va="center")
        return fig
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, row in zip(axes, mistakes.itertuples()):
        try:
            ax.imshow(model_view(row.path, preprocessing))
        except (OSError, ImageDecodeError):
            ax.text(0.5, 0.5, "(image not readable here)", ha="center", va="center", fontsize=7)
        ax.set_title(f"{row.label} → {row.predicted_label}\n{row.confidence:.2f}", fontsize=8)
    fig.suptitle(f"most confident mistakes (true → predicted, confidence): the original, "
                 f"and what the model saw ({preprocessing.mode} {preprocessing.size})",
                 fontsize=9)
    fig.tight_layout()
    return fig


def write_report(run_dir: str) -> list[str]:
    """Write PNGs and ``index.html`` / ``index.md`` into ``RUN/report/``; returns paths."""
    run = load_run(run_dir)
    out = RunDir(run.path).report
    os.makedirs(out, exist_ok=True)
    figures = [("explained_variance.png", "Cumulative explained variance", plot_explained_variance),
               ("projection.png", "First two principal components", plot_projection)]
    if run.metrics is not None:
        figures += [("confusion_matrix.png", "Confusion matrix (test split)", plot_confusion),
                    ("reliability.png", "Reliability: confidence against accuracy",
                     plot_reliability),
                    ("mistakes.png", "Most confident mistakes", plot_mistakes)]
    clusters = load_clusters(run.path, run.pca)
    if clusters is not None:
        figures += [(name, title, lambda _run, plot=plot: plot(clusters))
                    for name, title, plot in CLUSTER_FIGURES]
    duplicates = load_duplicates(run.path)
    if duplicates is not None:
        figures.append(("duplicates.png", "Near-duplicates: the largest groups",
                        lambda _run: plot_duplicate_groups(duplicates)))
    written = []
    for name, _, plot in figures:
        path = os.path.join(out, name)
        plot(run).savefig(path)
        written.append(path)
    c = run.manifest["counts"]
    summary = (f"{c['inputs']} images, {c['featurized']} featurized, {c['failed']} failed; "
               f"PCA k = {run.manifest['pca']['k']}")
    if run.metrics is not None:
        summary += (f"; test accuracy {run.metrics['accuracy']:.4f}, "
                    f"macro-F1 {run.metrics['macro_f1']:.4f}")
        if run.metrics.get("ece"):
            summary += (f"; ECE {run.metrics['ece']['before']:.4f} -> "
                        f"{run.metrics['ece']['after']:.4f} (temperature "
                        f"{run.metrics['calibration']['temperature']:.3f})")
    if clusters is not None:
        cs = clusters.summary
        summary += f"; {cs['k']} clusters (silhouette {cs['silhouette']:.3f}"
        summary += (f", ARI {cs['adjusted_rand_index']:.3f}, purity {cs['purity']:.3f})"
                    if cs.get("adjusted_rand_index") is not None else ")")
    with open(os.path.join(out, "index.md"), "w", encoding="utf-8") as fh:
        fh.write(f"# Run report: {run.path}\n\n{summary}\n\n")
        for name, title, _ in figures:
            fh.write(f"## {title}\n\n![{title}]({name})\n\n")
    with open(os.path.join(out, "index.html"), "w", encoding="utf-8") as fh:
        fh.write(f"<!doctype html><meta charset='utf-8'><title>Run report</title>"
                 f"<h1>Run report: {html.escape(run.path)}</h1><p>{html.escape(summary)}</p>")
        for name, title, _ in figures:
            fh.write(f"<h2>{html.escape(title)}</h2><img src='{name}' alt='{html.escape(title)}'>")
    written += [os.path.join(out, "index.md"), os.path.join(out, "index.html")]
    return written


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write RUN_DIR/report/ (PNGs + index.html).")
    p.add_argument("run_dir")
    args = p.parse_args(argv)
    for path in write_report(args.run_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
