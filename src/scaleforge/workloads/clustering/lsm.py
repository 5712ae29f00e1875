"""Liquid state machine features: a reservoir of spiking leaky integrate-and-fire neurons.

Each neuron integrates a current made of the signal itself (``w_in * u_t``,
with input weights of both signs, so negative values of the signal drive
some neurons and inhibit others — nothing is dropped), recurrent input from
the previous step's spikes, and a bias that sets its resting firing rate::

    I_t = w_in u_t + W s_{t-1} + b
    v_t = beta v_{t-1} + (1 - beta) I_t          (not refractory)
    s_t = [v_t >= threshold];  on a spike: v <- 0 and the neuron is silent
                                           for ``refractory_period`` steps
    x_t = gamma x_{t-1} + s_t                    (exponential spike trace)

with ``beta = exp(-1 / membrane_time_constant)`` and
``gamma = exp(-1 / trace_time_constant)``. Features per neuron: the firing
rate (spike count over the kept steps) and the mean and standard deviation of
its trace — 3R features per series. All series advance together, one matrix
product per step.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from scaleforge.workloads.clustering.reservoir import Backend, NumpyBackend, ReservoirWeights

__all__ = ["LSM_THRESHOLD", "lsm_features", "make_lsm_weights"]

#: Firing threshold of every neuron (the bias is drawn relative to it).
LSM_THRESHOLD = 1.0


def make_lsm_weights(
    reservoir_size: int,
    *,
    spectral_radius: float,
    sparsity: float,
    input_scaling: float,
    rng: np.random.Generator,
) -> ReservoirWeights:
    """Draw an LSM reservoir: signed input weights, sparse recurrent weights, near-threshold biases.

    Parameters
    ----------
    reservoir_size : int
        Number of neurons R.
    spectral_radius : float
        Spectral radius of the recurrent weight matrix (acting on 0/1 spikes).
    sparsity : float
        Fraction of zero recurrent weights.
    input_scaling : float
        Input weights are drawn from U(-input_scaling, input_scaling).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ReservoirWeights
        Weights whose biases lie in [0.6, 1.4] x threshold, so about half the
        neurons fire spontaneously and the other half need input to fire.
    """
    from scaleforge.workloads.clustering.reservoir import make_reservoir_weights

    base = make_reservoir_weights(
        reservoir_size,
        spectral_radius=spectral_radius,
        sparsity=sparsity,
        input_scaling=input_scaling,
        bias_scaling=0.0,
        rng=rng,
    )
    bias = LSM_THRESHOLD * rng.uniform(0.6, 1.4, size=reservoir_size)
    return ReservoirWeights(w_in=base.w_in, w=base.w, bias=bias)


def lsm_features(
    X: NDArray[np.float64],
    weights: ReservoirWeights,
    *,
    membrane_time_constant: float = 4.0,
    refractory_period: int = 2,
    trace_time_constant: float = 8.0,
    washout: int = 0,
    backend: Backend | None = None,
) -> NDArray[np.float64]:
    """Compute spike-count and spike-trace features of each series.

    Parameters
    ----------
    X : ndarray of shape (n_series, n_steps)
        Input series (finite; z-scored series work with the default scales).
    weights : ReservoirWeights
        From :func:`make_lsm_weights`.
    membrane_time_constant : float, default=4.0
        Membrane time constant, in steps (> 0).
    refractory_period : int, default=2
        Steps a neuron stays silent (membrane clamped at reset) after a spike.
    trace_time_constant : float, default=8.0
        Time constant of the exponential spike trace, in steps (> 0).
    washout : int, default=0
        Initial steps excluded from the features; clipped to ``(n_steps - 1) // 2``.
    backend : Backend or None, default=None
        numpy when None.

    Returns
    -------
    ndarray of shape (n_series, 3 * R)
        Firing rate, trace mean and trace standard deviation of every neuron.
    """
    be = backend or NumpyBackend()
    n, steps = X.shape
    r = weights.size
    washout = min(washout, max(steps - 1, 0) // 2)
    beta = math.exp(-1.0 / membrane_time_constant)
    gamma = math.exp(-1.0 / trace_time_constant)
    u = be.asarray(X)
    w_in, w_t, bias = be.asarray(weights.w_in), be.asarray(weights.w.T), be.asarray(weights.bias)
    v = be.zeros((n, r))
    refractory = be.zeros((n, r))
    spikes = be.zeros((n, r))
    trace = be.zeros((n, r))
    count, t1, t2 = be.zeros((n, r)), be.zeros((n, r)), be.zeros((n, r))
    for t in range(steps):
        current = u[:, t : t + 1] * w_in + spikes @ w_t + bias
        v = be.where(refractory > 0.5, v, beta * v + (1.0 - beta) * current)
        fired = v >= LSM_THRESHOLD
        spikes = be.where(fired, v * 0.0 + 1.0, v * 0.0)
        v = v * (1.0 - spikes)
        refractory = be.where(fired, spikes * float(refractory_period), be.maximum(refractory - 1.0, 0.0))
        trace = gamma * trace + spikes
        if t >= washout:
            count = count + spikes
            t1 = t1 + trace
            t2 = t2 + trace * trace
    kept = float(steps - washout)
    rate = count / kept
    mean = t1 / kept
    std = be.sqrt(be.maximum(t2 / kept - mean * mean, 0.0))
    return be.to_numpy(be.cat([rate, mean, std], axis=1))
