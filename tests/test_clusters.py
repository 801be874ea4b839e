"""featurize/clusters.py: ARI and purity against scikit-learn and plain loops; the k range."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.cluster import contingency_matrix

from featurize.errors import ConfigError

clusters = pytest.importorskip("featurize.clusters")  # imports pyspark (in .venv)


@pytest.mark.parametrize("seed", range(5))
def test_adjusted_rand_index_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, size=200)
    found = np.where(rng.random(200) < 0.6, truth, rng.integers(0, 6, size=200))
    table = contingency_matrix(truth, found)
    assert clusters.adjusted_rand_index(table) == pytest.approx(
        adjusted_rand_score(truth, found), abs=1e-12)
    assert clusters.adjusted_rand_index(contingency_matrix(truth, truth)) == 1.0
    shares = [max(np.sum((found == c) & (truth == t)) for t in set(truth)) for c in set(found)]
    assert clusters.purity(table) == pytest.approx(sum(shares) / 200)


def test_k_range():
    assert clusters.ClusterConfig(run="r").candidates(100) == list(range(2, 21))
    assert clusters.ClusterConfig(run="r").candidates(6) == [2, 3, 4, 5]
    assert clusters.ClusterConfig(run="r", k=7).candidates(100) == [7]
    with pytest.raises(ConfigError, match="allow k up to 4"):
        clusters.ClusterConfig(run="r", k=7).candidates(5)
    with pytest.raises(ConfigError, match="k-min"):
        clusters.ClusterConfig(run="r", k_min=5, k_max=3)
    with pytest.raises(ConfigError, match="at least 2"):
        clusters.ClusterConfig(run="r", k=1)
