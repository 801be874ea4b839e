"""featurize/review/clusters.py: ARI and purity against scikit-learn and plain loops; the k range."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.cluster import contingency_matrix

from featurize.errors import ConfigError
# imported, not skipped: a broken module must fail here
from featurize.review import clusters


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


def test_choose_k_one_standard_deviation_rule():
    from featurize.review.clusters import choose_k

    # one restart: the best silhouette, the smaller k on a tie
    assert choose_k({2: [0.30], 3: [0.41], 4: [0.41], 5: [0.39]}) == 3
    # 3 restarts: best mean is k=6 (0.40, population sd 0.0245), so the floor is 0.3755;
    # k=4's mean 0.38 is the smallest above it. The standard error (sd / sqrt(3) with
    # ddof=1: 0.0173, floor 0.3827) would have kept k=5 (0.385) instead.
    silhouettes = {2: [0.20, 0.21, 0.22], 3: [0.35, 0.36, 0.37], 4: [0.37, 0.38, 0.39],
                   5: [0.38, 0.385, 0.39], 6: [0.37, 0.40, 0.43]}
    assert np.mean(silhouettes[6]) - np.std(silhouettes[6]) == pytest.approx(0.37551, abs=1e-5)
    assert choose_k(silhouettes) == 4
    # restarts that agree (sd 0) leave the plain maximum
    assert choose_k({2: [0.2, 0.2], 3: [0.5, 0.5], 4: [0.45, 0.45]}) == 3
