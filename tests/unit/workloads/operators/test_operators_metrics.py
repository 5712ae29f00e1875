"""Metrics against closed forms, numerical integration and exact samples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.operators import metrics as M


@pytest.mark.parametrize(
    ("y", "mu", "sigma"), [(0.0, 0.0, 1.0), (1.3, -0.2, 0.7), (-4.0, 1.0, 2.5), (0.01, 0.0, 0.05)]
)
def test_crps_gaussian_matches_numerical_integral(y: float, mu: float, sigma: float) -> None:
    cdf = stats.norm(mu, sigma).cdf
    left, _ = integrate.quad(lambda t: cdf(t) ** 2, -np.inf, y)
    right, _ = integrate.quad(lambda t: (cdf(t) - 1.0) ** 2, y, np.inf)
    got = M.crps_gaussian(np.array([[y]]), np.array([[mu]]), np.array([[sigma]]))
    assert got > 0
    assert got == pytest.approx(left + right, rel=1e-6, abs=1e-10)


def test_gaussian_nll_matches_scipy(global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    y, mu = rng.normal(size=(3, 10)), rng.normal(size=(3, 10))
    sd = rng.uniform(0.1, 2.0, size=(3, 10))
    assert M.gaussian_nll(y, mu, sd) == pytest.approx(-np.mean(stats.norm(mu, sd).logpdf(y)), rel=1e-12)


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95])
def test_coverage_of_exact_samples_is_nominal(level: float, global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    mu = rng.normal(size=(50, 400))
    sd = rng.uniform(0.5, 2.0, size=mu.shape)
    y = mu + sd * rng.standard_normal(mu.shape)
    # 20,000 Bernoulli(level) draws: 4 standard errors is < 0.01
    assert M.coverage(y, mu, sd, level) == pytest.approx(level, abs=0.01)
    nominal, observed = M.calibration_curve(y, mu, sd)
    assert np.max(np.abs(nominal - observed)) < 0.015
    assert M.interval_width(sd, level) == pytest.approx(2 * stats.norm.ppf(0.5 + level / 2) * sd.mean())


def test_sample_crps_converges_to_closed_form(global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    mu, sd = rng.normal(size=(4, 8)), rng.uniform(0.5, 1.5, size=(4, 8))
    y = mu + rng.normal(size=mu.shape)
    samples = mu[:, None] + sd[:, None] * rng.standard_normal((4, 4000, 8))
    assert M.crps_samples(y, samples) == pytest.approx(M.crps_gaussian(y, mu, sd), rel=0.03)


def test_energy_score_on_one_point_equals_crps(global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    y, samples = rng.normal(size=(5, 1)), rng.normal(size=(5, 30, 1))
    assert M.energy_score(y, samples) == pytest.approx(M.crps_samples(y, samples), rel=1e-10)


def test_energy_score_prefers_the_true_distribution(global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    y = rng.normal(size=(40, 16))
    right = rng.normal(size=(40, 20, 16))
    too_narrow = 0.3 * rng.normal(size=(40, 20, 16))
    assert M.energy_score(y, right) < M.energy_score(y, too_narrow)


def test_rel_l2_known_value() -> None:
    y = np.array([[3.0, 4.0], [1.0, 0.0]])
    pred = np.array([[3.0, 4.5], [1.0, 1.0]])
    assert M.rel_l2(y, pred) == pytest.approx((0.5 / 5.0 + 1.0) / 2)


def test_evaluate_gaussian_keys_and_values() -> None:
    y = np.zeros((2, 3))
    out = M.evaluate_gaussian(y + 1.0, y + 1.0, y + 1.0)
    assert set(out) == {"rel_l2", "nll", "crps", "cov50", "cov90", "cov95", "width90", "calibration_error"}
    assert out["rel_l2"] == 0.0 and out["cov90"] == 1.0


def test_bad_metric_inputs_raise_clear_errors() -> None:
    with pytest.raises(InvalidParameterError, match="one shape"):
        M.crps_gaussian(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 4)))
    with pytest.raises(InvalidParameterError, match=r"'std'.*> 0"):
        M.gaussian_nll(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(InvalidParameterError, match="NaN"):
        M.rel_l2(np.array([[np.nan, 1.0]]), np.ones((1, 2)))
    with pytest.raises(InvalidParameterError, match="'level'"):
        M.coverage(np.zeros((1, 2)), np.zeros((1, 2)), np.ones((1, 2)), level=1.5)
    with pytest.raises(InvalidParameterError, match="m >= 2"):
        M.energy_score(np.zeros((2, 3)), np.zeros((2, 1, 3)))
