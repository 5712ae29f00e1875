"""Last-layer Laplace: exact Bayesian linear regression against closed forms, and calibration on a toy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _optoys import TINY, heat_operator, smooth_fields
from scipy import stats

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.operators import metrics as M
from scaleforge.workloads.operators.laplace import BayesianLinearRegression, LaplaceOperator
from scaleforge.workloads.operators.training import TrainConfig


def _linear_gaussian(
    n: int, d: int, alpha: float, beta: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    phi = rng.normal(size=(n, d))
    w = rng.normal(size=d) / np.sqrt(alpha)
    y = phi @ w + rng.normal(size=n) / np.sqrt(beta)
    return phi, y, w


def test_posterior_matches_closed_form_for_fixed_precisions(global_random_seed: int) -> None:
    phi, y, _ = _linear_gaussian(60, 4, 2.0, 25.0, global_random_seed)
    blr = BayesianLinearRegression(alpha=2.0, beta=25.0).fit(phi, y)
    cov = np.linalg.inv(2.0 * np.eye(4) + 25.0 * phi.T @ phi)
    np.testing.assert_allclose(blr.cov_, cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(blr.mean_, 25.0 * cov @ phi.T @ y, rtol=1e-9)
    # evidence: y ~ N(0, Φ Φᵀ / α + I / β)
    marginal = stats.multivariate_normal(np.zeros(60), phi @ phi.T / 2.0 + np.eye(60) / 25.0)
    assert blr.log_evidence_ == pytest.approx(marginal.logpdf(y), rel=1e-9)
    mean, var = blr.predict(phi[:5])
    np.testing.assert_allclose(mean, phi[:5] @ blr.mean_)
    np.testing.assert_allclose(var, np.einsum("ij,jk,ik->i", phi[:5], cov, phi[:5]), rtol=1e-9)


def test_evidence_maximisation_finds_the_maximum(global_random_seed: int) -> None:
    phi, y, _ = _linear_gaussian(300, 6, 1.0, 100.0, global_random_seed)
    blr = BayesianLinearRegression().fit(phi, y)
    best = blr.log_evidence_
    for da in (0.8, 1.25):
        for db in (0.8, 1.25):
            other = BayesianLinearRegression(alpha=blr.alpha_ * da, beta=blr.beta_ * db).fit(phi, y)
            assert other.log_evidence_ < best
    assert 1 / np.sqrt(blr.beta_) == pytest.approx(0.1, rel=0.1)  # the true noise std


def test_bad_design_is_rejected() -> None:
    with pytest.raises(InvalidParameterError, match=r"shape \(N, D\)"):
        BayesianLinearRegression().fit(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(InvalidParameterError, match="'alpha'"):
        BayesianLinearRegression(alpha=-1.0).fit(np.ones((5, 2)), np.zeros(5))


@pytest.fixture(scope="module")
def linear_toy() -> dict[str, np.ndarray]:
    # y = exp(tΔ) x + ε, ε ~ N(0, σ²) iid per point: the exact predictive std is σ (plus the small epistemic part)
    rng = np.random.default_rng(7)
    sigma = 0.05
    x, xt = smooth_fields(160, 32, rng), smooth_fields(40, 32, rng)
    y = heat_operator(x) + sigma * rng.standard_normal(x.shape)
    yt = heat_operator(xt) + sigma * rng.standard_normal(xt.shape)
    return {"x": x, "y": y, "xt": xt, "yt": yt, "sigma": np.array(sigma)}


def test_laplace_head_is_calibrated_on_a_linear_gaussian_toy(linear_toy: dict[str, np.ndarray]) -> None:
    model = LaplaceOperator(
        **TINY, noise="homoscedastic", training=TrainConfig(epochs=40, lr=5e-3, batch_size=16)
    )
    model.fit(linear_toy["x"], linear_toy["y"])
    mean, std = model.predict(linear_toy["xt"])
    sigma = float(linear_toy["sigma"])
    assert np.median(std) == pytest.approx(sigma, rel=0.2)
    assert 0.85 <= M.coverage(linear_toy["yt"], mean, std, 0.9) <= 0.95
    # the head's numbers are the closed-form posterior predictive of its own last layer
    xt = torch.as_tensor(
        (linear_toy["xt"][:4] - model.x_scaler_.mean) / model.x_scaler_.std, dtype=torch.float32
    )
    with torch.no_grad():
        feats = model.net_.features(xt).double().reshape(-1, TINY["hidden"]).numpy()
    phi = np.hstack([feats, np.ones((feats.shape[0], 1))])
    blr = model.blr_
    cov = np.linalg.inv(blr.alpha_ * np.eye(phi.shape[1]) + blr.beta_ * _calibration_gram(model, linear_toy))
    var = np.einsum("ij,jk,ik->i", phi, cov, phi) + 1.0 / blr.beta_
    np.testing.assert_allclose(std[:4].ravel(), np.sqrt(var) * model.y_scaler_.std, rtol=1e-5)
    np.testing.assert_allclose(
        mean[:4].ravel(), (phi @ blr.mean_) * model.y_scaler_.std + model.y_scaler_.mean, rtol=1e-6, atol=1e-9
    )


def _calibration_gram(model: LaplaceOperator, data: dict[str, np.ndarray]) -> np.ndarray:
    # the head conditions on the 10 % validation split drawn with its random_state
    perm = np.random.default_rng(model.random_state).permutation(data["x"].shape[0])
    xv = data["x"][perm[: data["x"].shape[0] // 10]]
    xt = torch.as_tensor((xv - model.x_scaler_.mean) / model.x_scaler_.std, dtype=torch.float32)
    with torch.no_grad():
        feats = model.net_.features(xt).double().reshape(-1, TINY["hidden"]).numpy()
    phi = np.hstack([feats, np.ones((feats.shape[0], 1))])
    return phi.T @ phi


def test_laplace_samples_have_the_predicted_spread(linear_toy: dict[str, np.ndarray]) -> None:
    model = LaplaceOperator(**TINY, training=TrainConfig(epochs=5)).fit(linear_toy["x"], linear_toy["y"])
    _, std = model.predict(linear_toy["xt"][:2])
    draws = model.sample(linear_toy["xt"][:2], 2000, random_state=0)
    np.testing.assert_allclose(draws.std(axis=1), std, rtol=0.08)
