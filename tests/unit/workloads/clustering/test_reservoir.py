"""Reservoir construction, ESN and LSM dynamics against closed forms, and torch/numpy agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.clustering.esn import esn_features, run_esn
from scaleforge.workloads.clustering.lsm import LSM_THRESHOLD, lsm_features, make_lsm_weights
from scaleforge.workloads.clustering.reservoir import (
    NumpyBackend,
    ReservoirWeights,
    get_backend,
    make_reservoir_weights,
)


def _weights(r: int = 20, seed: int = 0, **kw: float) -> ReservoirWeights:
    params = {"spectral_radius": 0.9, "sparsity": 0.8, "input_scaling": 0.5, "bias_scaling": 0.1} | kw
    return make_reservoir_weights(r, rng=np.random.default_rng(seed), **params)  # type: ignore[arg-type]


def test_recurrent_weights_have_target_spectral_radius_and_sparsity(global_random_seed: int) -> None:
    w = make_reservoir_weights(
        120,
        spectral_radius=0.7,
        sparsity=0.9,
        input_scaling=0.3,
        bias_scaling=0.1,
        rng=np.random.default_rng(global_random_seed),
    )
    assert max(abs(np.linalg.eigvals(w.w))) == pytest.approx(0.7, rel=1e-9)
    assert np.mean(w.w == 0.0) == pytest.approx(0.9, abs=0.015)
    assert (np.count_nonzero(w.w, axis=1) >= 1).all()
    assert np.abs(w.w_in).max() <= 0.3


def test_batched_esn_equals_one_series_at_a_time(global_random_seed: int) -> None:
    rng = np.random.default_rng(global_random_seed)
    X = rng.standard_normal((7, 30))
    w = _weights(seed=global_random_seed)
    batched = run_esn(X, w, leak_rate=0.4)
    for i in range(X.shape[0]):
        h = np.zeros(w.size)
        for t in range(X.shape[1]):
            h = 0.6 * h + 0.4 * np.tanh(w.w_in * X[i, t] + w.w @ h + w.bias)
            np.testing.assert_allclose(batched[i, t], h, atol=1e-13)


def test_state_features_match_their_definition(global_random_seed: int) -> None:
    X = np.random.default_rng(global_random_seed).standard_normal((5, 40))
    w = _weights(seed=global_random_seed)
    states = run_esn(X, w, leak_rate=0.5)[:, 10:, :]
    feats = esn_features(X, w, leak_rate=0.5, washout=10, representation="states")
    np.testing.assert_allclose(
        feats, np.concatenate([states.mean(axis=1), states.std(axis=1)], axis=1), atol=1e-12
    )


def test_model_space_readout_recovers_an_ar1_coefficient(global_random_seed: int) -> None:
    # One unit, no recurrence, leak 1 and a tiny input weight: h_t = tanh(eps u_t) ~ eps u_t, so the
    # ridge readout predicting u_{t+1} is phi / eps (plus a near-zero intercept).
    rng = np.random.default_rng(global_random_seed)
    phi, eps, steps = 0.6, 1e-3, 20_000
    x = np.zeros((2, steps))
    for t in range(1, steps):
        x[:, t] = phi * x[:, t - 1] + rng.standard_normal(2)
    w = ReservoirWeights(np.array([eps]), np.zeros((1, 1)), np.zeros(1))
    readout = esn_features(x, w, leak_rate=1.0, washout=0, representation="model_space", ridge=1e-9)
    np.testing.assert_allclose(readout[:, 0] * eps, phi, atol=0.02)
    np.testing.assert_allclose(readout[:, 1], 0.0, atol=0.05)


def test_washout_is_clipped_for_short_series() -> None:
    w = _weights()
    feats = esn_features(np.ones((3, 4)), w, leak_rate=0.5, washout=100, representation="states")
    assert np.isfinite(feats).all()
    one_step = esn_features(
        np.ones((3, 1)), w, leak_rate=0.5, washout=5, representation="model_space", ridge=1.0
    )
    np.testing.assert_array_equal(one_step, 0.0)  # no (state, next input) pair: the ridge solution is 0


def _single_neuron(w_in: float, bias: float) -> ReservoirWeights:
    return ReservoirWeights(np.array([w_in]), np.zeros((1, 1)), np.array([bias]))


@pytest.mark.parametrize(("current", "tau", "refractory"), [(1.5, 4.0, 2), (3.0, 2.0, 0), (1.2, 6.0, 5)])
def test_lif_firing_rate_matches_closed_form(current: float, tau: float, refractory: int) -> None:
    # Constant suprathreshold current: from reset, v_n = I (1 - beta^n) crosses the threshold after
    # n* = ceil(log(1 - theta/I) / log beta) steps, then the neuron is silent for the refractory period.
    beta = math.exp(-1.0 / tau)
    n_star = math.ceil(math.log(1.0 - LSM_THRESHOLD / current) / math.log(beta))
    period = n_star + refractory
    steps = 600
    expected_count = (steps - n_star) // period + 1
    feats = lsm_features(
        np.zeros((1, steps)),
        _single_neuron(0.0, current),
        membrane_time_constant=tau,
        refractory_period=refractory,
    )
    assert feats[0, 0] * steps == pytest.approx(expected_count)


def test_refractory_period_caps_the_firing_rate() -> None:
    feats = lsm_features(np.zeros((1, 300)), _single_neuron(0.0, 1e6), refractory_period=3)
    assert feats[0, 0] == pytest.approx(1 / 4, abs=1 / 300)


def test_negative_signal_values_drive_neurons_with_negative_input_weights() -> None:
    # Bias below threshold: the neuron fires only when w_in * u pushes the current above it,
    # so a negative input weight makes negative signal values excitatory (nothing is dropped).
    neuron = _single_neuron(-1.0, 0.9)
    negative = lsm_features(np.full((1, 200), -0.5), neuron)
    positive = lsm_features(np.full((1, 200), 0.5), neuron)
    assert negative[0, 0] > 0.1
    assert positive[0, 0] == 0.0
    assert positive[0, 2] == 0.0  # a silent neuron's trace has zero spread


def test_get_backend_choices() -> None:
    assert isinstance(get_backend("numpy"), NumpyBackend)
    with pytest.raises(InvalidParameterError, match=r"'backend'.*'gpu'"):
        get_backend("gpu")


def test_torch_cpu_matches_numpy(global_random_seed: int) -> None:
    pytest.importorskip("torch")
    from scaleforge.workloads.clustering.reservoir import TorchBackend

    torch_be = TorchBackend("cpu")
    X = np.random.default_rng(global_random_seed).standard_normal((9, 80))
    w = _weights(seed=global_random_seed)
    for rep in ("states", "model_space"):
        a = esn_features(X, w, leak_rate=0.5, washout=10, representation=rep, ridge=1.0)
        b = esn_features(X, w, leak_rate=0.5, washout=10, representation=rep, ridge=1.0, backend=torch_be)
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-11)
    lw = make_lsm_weights(
        20, spectral_radius=0.9, sparsity=0.8, input_scaling=1.0, rng=np.random.default_rng(1)
    )
    np.testing.assert_allclose(lsm_features(X, lw, backend=torch_be), lsm_features(X, lw), atol=1e-12)
    np.testing.assert_allclose(
        run_esn(X, w, leak_rate=0.5, backend=torch_be), run_esn(X, w, leak_rate=0.5), atol=1e-12
    )
