"""Consensus clustering through scaleforge.map: alignment, vote, stability; chunked prediction at scale."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.clustering import (
    ProfileClustering,
    ReservoirClustering,
    align_labels,
    consensus_clustering,
    make_ar2,
    make_profiles,
    predict_in_chunks,
    run_at_scale,
)


def test_align_labels_undoes_a_permutation(global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    reference = rng.integers(0, 5, size=200)
    permutation = rng.permutation(5)
    np.testing.assert_array_equal(align_labels(permutation[reference], reference), reference)
    noisy = permutation[reference].copy()
    noisy[:20] = rng.integers(0, 5, size=20)
    assert np.mean(align_labels(noisy, reference) == reference) >= 0.9


def test_consensus_of_separated_profiles_is_perfectly_stable() -> None:
    data = make_profiles(200, spread=4.0, random_state=0)
    result = consensus_clustering(ProfileClustering(4, n_init=2), data.X, n_runs=4, random_state=0)
    assert result.stability == pytest.approx(1.0)
    assert adjusted_rand_score(data.y, result.labels) == pytest.approx(1.0)
    np.testing.assert_array_equal(result.agreement, 1.0)
    # Aligned runs all use the reference run's numbering.
    for run in result.run_labels:
        np.testing.assert_array_equal(run, result.labels)


def test_bootstrap_consensus_on_overlapping_profiles() -> None:
    data = make_profiles(300, spread=25.0, random_state=1)
    result = consensus_clustering(
        ProfileClustering(4, n_init=1), data.X, n_runs=6, bootstrap=True, random_state=0
    )
    off = result.pairwise_ari[~np.eye(6, dtype=bool)]
    assert result.stability == pytest.approx(off.mean())
    assert 0.0 < result.stability < 1.0
    # The vote is at least as good as a typical run.
    runs = [adjusted_rand_score(data.y, r) for r in result.run_labels]
    assert adjusted_rand_score(data.y, result.labels) >= np.median(runs) - 0.02
    assert result.agreement.min() >= 1 / 6


def test_consensus_bad_input() -> None:
    with pytest.raises(InvalidParameterError, match=r"'n_runs'.*Got 1"):
        consensus_clustering(ProfileClustering(2), np.eye(4), n_runs=1)
    with pytest.raises(InvalidParameterError, match=r"'X'.*NaN or inf"):
        consensus_clustering(ProfileClustering(2), np.full((4, 2), np.inf))
    with pytest.raises(InvalidParameterError, match=r"'estimator'"):
        consensus_clustering(object(), np.eye(4))


def test_predict_in_chunks_equals_predict() -> None:
    data = make_ar2(90, 100, random_state=0)
    model = ReservoirClustering(n_clusters=4, reservoir_size=15, washout=10, random_state=0).fit(data.X)
    np.testing.assert_array_equal(predict_in_chunks(model, data.X, chunk_size=25), model.predict(data.X))


def test_run_at_scale_labels_every_series() -> None:
    model = ReservoirClustering(n_clusters=4, reservoir_size=20, random_state=0)
    report = run_at_scale(model, 300, 300, chunk_size=100, fit_series=300, random_state=0)
    assert report.n_series == 300
    assert report.ari > 0.6
    assert report.chunk_bytes == 100 * 300 * 8
    assert report.series_per_s > 0


@pytest.mark.timeout(180)
def test_forked_workers_do_not_hang_after_parent_used_openmp() -> None:
    # Regression: scikit-learn's KMeans runs OpenMP; a worker forked after the parent ran it
    # hangs in its first multi-threaded region unless tasks run with one OpenMP thread.
    import scaleforge as sf

    data = make_profiles(400, spread=5.0, random_state=0)
    fitted = ProfileClustering(4, random_state=0).fit(data.X)  # the parent initialises its OpenMP pool
    series = make_ar2(60, 120, random_state=0).X
    reservoir = ReservoirClustering(n_clusters=4, reservoir_size=10, washout=10, random_state=0).fit(series)
    with sf.executor("processes", max_workers=2, start_method="fork") as ex:
        result = consensus_clustering(
            ProfileClustering(4, n_init=2), data.X, n_runs=2, executor=ex, random_state=0
        )
        # Models fitted in the parent carry its OpenMP thread count into the workers.
        profiles = predict_in_chunks(fitted, data.X, chunk_size=100, executor=ex)
        labels = predict_in_chunks(reservoir, series, chunk_size=20, executor=ex)
    assert result.stability == pytest.approx(1.0)
    np.testing.assert_array_equal(profiles, fitted.labels_)
    np.testing.assert_array_equal(labels, reservoir.labels_)
