"""The report's near-duplicate figure: the largest groups of ``RUN/duplicates/`` (``make
index INDEX_ARGS="--duplicates T"``) as rows of images, each titled with its size and
the lowest similarity to its first image."""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from featurize.review.report_clusters import show_image
from featurize.rundir import RunDir


def load_duplicates(run_dir: str) -> pd.DataFrame | None:
    """``group, path, similarity`` of the run's duplicates, or None (not indexed with
    ``--duplicates``, or no group)."""
    import pyarrow.parquet as pq

    folder = RunDir(run_dir).duplicates
    if not os.path.isdir(folder):
        return None
    df = pq.read_table(folder).to_pandas()
    return df if len(df) else None


def plot_duplicate_groups(groups: pd.DataFrame, n_groups: int = 6, per_group: int = 6,
                          thumb: int = 96) -> Any:
    """One row per group, largest first (group 1 is the largest): its first
    ``per_group`` images in path order."""
    from matplotlib.figure import Figure

    shown = sorted(groups["group"].unique())[:n_groups]
    fig = Figure(figsize=(1.25 * per_group + 1.6, 1.3 * len(shown) + 0.5), dpi=100)
    axes = np.atleast_2d(fig.subplots(len(shown), per_group))
    for row, g in zip(axes, shown):
        members = groups[groups["group"] == g].sort_values("path")
        for ax in row:
            ax.axis("off")
        for ax, path in zip(row, members["path"]):
            show_image(ax, path, thumb)
        row[0].set_title(f"group {g}: {len(members)} images, similarity to the first "
                         f">= {members['similarity'].min():.3f}", fontsize=8, loc="left")
    total = groups["group"].nunique()
    fig.suptitle(f"near-duplicates: the {len(shown)} largest of {total} groups", fontsize=10)
    fig.tight_layout()
    return fig
