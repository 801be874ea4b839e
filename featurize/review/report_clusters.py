"""Pictures of a run's clusters (after ``jobs/cluster_features.py``): a 2-D t-SNE map
coloured by cluster and by label side by side, the silhouette against k, and a grid of
the images nearest each cluster's centre. ``featurize.review.report`` adds them to
``RUN/report/`` when ``RUN/clusters.json`` exists; the notebook shows them too.

Reads with pyarrow and plots with matplotlib (no Spark). The map is scikit-learn's t-SNE
on at most ``max_points`` images (a seeded sample, as the whole of a large run would take
minutes), on the same vectors the clusters were made from: unit-length PCA features for
the cosine distance, the PCA features themselves for the Euclidean.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from featurize.model.decode import ImageDecodeError
from featurize.model.preprocess import decode_rgb
from featurize.rundir import RunDir, local_path


@dataclass
class ClusterData:
    """``clusters.json`` and ``RUN/clusters`` joined with the PCA features."""

    summary: dict[str, Any]
    #: path, label, cluster, distance, pca_features
    assigned: pd.DataFrame


def load_clusters(run_dir: str, pca: pd.DataFrame) -> ClusterData | None:
    """The run's clusters, or None when ``cluster_features`` has not run on it."""
    import pyarrow.parquet as pq

    paths = RunDir(run_dir)
    if not (os.path.isfile(paths.clusters_summary) and os.path.isdir(paths.clusters)):
        return None
    with open(paths.clusters_summary, encoding="utf-8") as fh:
        summary = json.load(fh)
    assigned = pq.read_table(paths.clusters).to_pandas()
    assigned = assigned.merge(pca[["path", "pca_features"]], on="path", how="inner")
    return ClusterData(summary, assigned.sort_values("path").reset_index(drop=True))


def embed_2d(data: ClusterData, max_points: int = 3000, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of at most ``max_points`` images with t-SNE coordinates ``x, y``."""
    from sklearn.manifold import TSNE

    df = data.assigned
    if len(df) > max_points:
        df = df.sample(max_points, random_state=seed)
    x = np.stack(df["pca_features"].to_numpy()).astype(np.float64)
    if data.summary["config"].get("distance", "cosine") == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
    xy = TSNE(n_components=2, perplexity=min(30.0, max(2.0, (len(x) - 1) / 3)),
              init="pca", random_state=seed).fit_transform(x)
    return df.assign(x=xy[:, 0], y=xy[:, 1]).reset_index(drop=True)


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _scatter(ax: Any, df: pd.DataFrame, column: str, title: str) -> None:
    from matplotlib import colormaps

    values = df[column].astype("string").fillna("(no label)")
    groups = sorted(set(values), key=lambda v: (len(v), v))  # 2 before 10
    cmap = colormaps["tab20" if len(groups) > 10 else "tab10"]
    for i, group in enumerate(groups):
        mask = (values == group).to_numpy()
        ax.scatter(df["x"][mask], df["y"][mask], s=5, alpha=0.75, color=cmap(i % cmap.N),
                   label=group)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=6, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5),
              ncol=2 if len(groups) > 12 else 1, frameon=False)


def plot_cluster_map(data: ClusterData, max_points: int = 3000) -> Any:
    """t-SNE of the features: coloured by cluster (left) and by label (right)."""
    df = embed_2d(data, max_points)
    fig = _figure(13.0, 5.5)
    left, right = fig.subplots(1, 2)
    s = data.summary
    _scatter(left, df, "cluster", f"by cluster (k = {s['k']})")
    agreement = ("" if s.get("adjusted_rand_index") is None else
                 f": ARI {s['adjusted_rand_index']:.3f}, purity {s['purity']:.3f}")
    _scatter(right, df, "label", f"by label{agreement}")
    total = len(data.assigned)
    sampled = f"a sample of {len(df)} of {total}" if len(df) < total else f"all {total}"
    fig.suptitle(f"t-SNE map of the PCA features ({sampled} images, "
                 f"{s['config'].get('distance', 'cosine')} distance)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_silhouette(data: ClusterData) -> Any:
    """The silhouette of every candidate k: the kept fit's, and the mean ± sd over the
    restarts with the rule's floor (the best mean less its sd); the chosen k marked."""
    s = data.summary
    cands = s["candidates"]
    ks = [c["k"] for c in cands]
    fig = _figure(6.5, 4.0)
    ax = fig.subplots()
    ax.plot(ks, [c["silhouette"] for c in cands], marker="o", markersize=4, linewidth=1,
            label="the kept fit (lowest cost)")
    if (s.get("k_chosen_by") == "silhouette" and all("silhouette_mean" in c for c in cands)
            and len(cands[0].get("silhouettes", [])) > 1):
        means = np.array([c["silhouette_mean"] for c in cands])
        sds = np.array([c["silhouette_sd"] for c in cands])
        ax.errorbar(ks, means, yerr=sds, fmt="s", markersize=3, color="#54a24b",
                    capsize=2, label=f"mean ± sd over {len(cands[0]['silhouettes'])} restarts")
        best = int(np.argmax(means))
        ax.axhline(means[best] - sds[best], color="#54a24b", linestyle=":", linewidth=1,
                   label="best mean - its sd")
    ax.axvline(s["k"], color="#e45756", linestyle="--",
               label=f"k = {s['k']} ({s.get('k_chosen_by', 'silhouette')})")
    ax.set_xlabel("k (clusters)")
    ax.set_ylabel(f"silhouette ({s['config'].get('distance', 'cosine')})")
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(f"KMeans silhouette against k ({s['images']} images)", fontsize=10)
    return fig


def plot_cluster_grid(data: ClusterData, per_cluster: int = 6, thumb: int = 96) -> Any:
    """One row per cluster: its ``per_cluster`` images nearest the centre, titled with
    the cluster's size and its most common label."""
    df = data.assigned
    clusters = sorted(df["cluster"].unique())
    fig = _figure(1.25 * per_cluster + 1.6, 1.3 * len(clusters) + 0.5)
    axes = np.atleast_2d(fig.subplots(len(clusters), per_cluster))
    for row, cluster in zip(axes, clusters):
        members = df[df["cluster"] == cluster]
        counts = members["label"].value_counts()  # nulls dropped, most common first
        common = (f"{counts.index[0]} {counts.iloc[0] / len(members):.0%}"
                  if len(counts) else "")
        nearest = members.nsmallest(per_cluster, "distance")
        for ax in row:
            ax.axis("off")
        for ax, path in zip(row, nearest["path"]):
            show_image(ax, path, thumb)
        row[0].set_title(f"cluster {cluster}: {len(members)} images, {common}",
                         fontsize=8, loc="left")
    fig.suptitle("the images nearest each cluster's centre", fontsize=10)
    fig.tight_layout()
    return fig


def show_image(ax: Any, path: str, thumb: int) -> None:
    """The run's image at ``path`` in ``ax``, at most ``thumb`` px, or a note that it
    cannot be read from here (a run written elsewhere, a file gone)."""
    from PIL import Image

    try:
        with open(local_path(path), "rb") as fh:
            img = decode_rgb(fh.read())
        img.thumbnail((thumb, thumb), Image.BILINEAR)
        ax.imshow(img)
    except (OSError, ImageDecodeError):
        ax.text(0.5, 0.5, "(not readable here)", ha="center", va="center", fontsize=6)


#: (file name, title, plot) for the report, in order.
FIGURES = (("clusters_map.png", "Clusters: t-SNE map by cluster and by label",
            plot_cluster_map),
           ("silhouette.png", "Clusters: silhouette against k", plot_silhouette),
           ("cluster_grid.png", "Clusters: the images nearest each centre",
            plot_cluster_grid))
