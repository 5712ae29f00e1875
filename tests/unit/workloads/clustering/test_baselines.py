"""Baselines: the spectral baseline is strong on AR(2), raw k-means is at chance.

DTW k-means is exercised by benchmarks/bench_clustering.py only: tslearn JIT-compiles it with
numba on first use, which costs over a minute of the test budget.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from scaleforge.workloads.clustering import make_ar2
from scaleforge.workloads.clustering.baselines import (
    log_spectrum,
    periodogram_kmeans,
    raw_kmeans,
    spectral_kmeans,
)


def test_log_spectrum_of_white_noise_is_flat(global_random_seed: int) -> None:
    x = np.random.default_rng(global_random_seed).standard_normal((20, 4096))
    spectrum = log_spectrum(x).mean(axis=0)[1:-1]
    # Welch's one-sided density of unit white noise is 2 (per unit frequency, fs=1): log 2 on average
    # (the mean of a log-chi-square estimate sits slightly below the log of the mean).
    assert abs(np.median(spectrum) - np.log(2.0)) < 0.1
    assert spectrum.std() < 0.1


def test_spectral_beats_raw_on_ar2() -> None:
    data = make_ar2(200, 400, random_state=5)
    assert adjusted_rand_score(data.y, spectral_kmeans(data.X, 4)) > 0.85
    assert adjusted_rand_score(data.y, periodogram_kmeans(data.X, 4)) > 0.4
    assert abs(adjusted_rand_score(data.y, raw_kmeans(data.X, 4))) < 0.1
