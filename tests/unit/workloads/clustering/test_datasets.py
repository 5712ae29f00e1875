"""Data generators: determinism, known structure, and the bundled real data sets."""

from __future__ import annotations

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.clustering.datasets import (
    AR2_CLASSES,
    PROFILE_CENTRES,
    load_digits,
    load_trace,
    make_ar2,
    make_drifting_stream,
    make_nonlinear,
    make_profiles,
    oracle_labels,
)


def test_generators_are_deterministic_by_seed(global_random_seed: int) -> None:
    for make in (make_ar2, make_nonlinear):
        a, b = make(12, 40, random_state=global_random_seed), make(12, 40, random_state=global_random_seed)
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.y, b.y)
        assert not np.array_equal(a.X, make(12, 40, random_state=global_random_seed + 1).X)
    p, q = (
        make_profiles(30, random_state=global_random_seed),
        make_profiles(30, random_state=global_random_seed),
    )
    np.testing.assert_array_equal(p.X, q.X)


def test_ar2_series_are_zscored_and_balanced(global_random_seed: int) -> None:
    data = make_ar2(41, 300, random_state=global_random_seed)
    np.testing.assert_allclose(data.X.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(data.X.std(axis=1), 1.0, atol=1e-12)
    counts = np.bincount(data.y)
    assert counts.max() - counts.min() <= 1


def test_ar2_classes_have_their_known_coefficients(global_random_seed: int) -> None:
    # Least-squares AR(2) fit per class recovers a1 = 2 r cos(omega), a2 = -r^2 (z-scoring does not change them).
    data = make_ar2(80, 2000, random_state=global_random_seed)
    for k, (r, omega) in enumerate(AR2_CLASSES):
        X = data.X[data.y == k]
        lagged = np.stack([X[:, 1:-1].ravel(), X[:, :-2].ravel()], axis=1)
        coef, *_ = np.linalg.lstsq(lagged, X[:, 2:].ravel(), rcond=None)
        np.testing.assert_allclose(coef, [2 * r * np.cos(omega), -(r**2)], atol=0.02)


def test_profiles_are_valid_colour_profiles(global_random_seed: int) -> None:
    data = make_profiles(400, spread=20.0, random_state=global_random_seed)
    np.testing.assert_allclose(data.X.sum(axis=1), 100.0)
    assert data.X.min() >= 0.0 and data.X.max() <= 100.0
    np.testing.assert_allclose(PROFILE_CENTRES.sum(axis=1), 100.0)
    # With no noise the oracle recovers every class exactly.
    clean = make_profiles(40, spread=0.0, random_state=global_random_seed)
    np.testing.assert_array_equal(oracle_labels(clean.X), clean.y)


def test_drifting_stream_changes_mixture_at_change_point(global_random_seed: int) -> None:
    data = make_drifting_stream(4000, change_at=2000, random_state=global_random_seed)
    assert (data.y[:2000] != 3).all()
    assert 0.6 < np.mean(data.y[2000:] == 3) < 0.8
    stationary = make_drifting_stream(1000, change_at=None, random_state=global_random_seed)
    assert (stationary.y != 3).all()


def test_trace_loads_offline_from_tslearn() -> None:
    data = load_trace()
    assert data.X.shape == (200, 275)
    assert np.isfinite(data.X).all()
    np.testing.assert_array_equal(np.bincount(data.y), [50, 50, 50, 50])


def test_digits_load() -> None:
    data = load_digits()
    assert data.X.shape == (1797, 64)
    assert sorted(set(data.y.tolist())) == list(range(10))


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: make_ar2(0, 10), "n_series"),
        (lambda: make_ar2(10, 1), "length"),
        (lambda: make_ar2(10, 10, n_classes=5), "n_classes"),
        (lambda: make_profiles(10, spread=-1.0), "spread"),
        (lambda: make_drifting_stream(100, change_at=200), "change_at"),
        (lambda: make_drifting_stream(100, change_at=50, weights_after=(1.0, 0.0)), "weights_after"),
        (lambda: make_nonlinear(10, 20, noise=-0.1), "noise"),
    ],
)
def test_bad_generator_arguments_name_the_parameter(call: object, name: str) -> None:
    with pytest.raises(InvalidParameterError, match=name):
        call()  # type: ignore[operator]
