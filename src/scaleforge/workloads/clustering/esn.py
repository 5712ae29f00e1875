"""Echo state network features, batched over series.

All N series advance together: one step is one ``(N, R) @ (R, R)`` matrix
product plus a leaky tanh update, so a batch of series costs T matrix
products, not N x T vector products. Two representations:

- ``"states"`` — mean and standard deviation of every unit over time
  (after the washout): 2R features per series.
- ``"model_space"`` — the reservoir model space of Bianchi et al. (2020): a
  ridge readout per series that predicts the next input from the current
  state, whose R + 1 weights (with intercept) describe the series' dynamics.

References
----------
F. M. Bianchi, S. Scardapane, S. Løkse, R. Jenssen, "Reservoir computing
approaches for representation and classification of multivariate time
series", IEEE TNNLS, 2020 (arXiv:1803.07870).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge.workloads.clustering.reservoir import Backend, NumpyBackend, ReservoirWeights

__all__ = ["REPRESENTATIONS", "esn_features", "run_esn"]

REPRESENTATIONS = ("states", "model_space")

# Steps per Gram-matrix block in the model-space accumulation: large enough that the
# batched matmul dominates the Python overhead, small enough that (N, block, R) fits in cache-friendly memory.
_BLOCK = 32


def run_esn(
    X: NDArray[np.float64],
    weights: ReservoirWeights,
    *,
    leak_rate: float,
    backend: Backend | None = None,
) -> NDArray[np.float64]:
    """Run the reservoir and return every state (for inspection and small inputs).

    Parameters
    ----------
    X : ndarray of shape (n_series, n_steps)
        Input series.
    weights : ReservoirWeights
        The reservoir.
    leak_rate : float
        Leak a in ``h <- (1 - a) h + a tanh(w_in u + W h + b)``.
    backend : Backend or None, default=None
        numpy when None.

    Returns
    -------
    ndarray of shape (n_series, n_steps, reservoir_size)
        The states after each step.

    Examples
    --------
    >>> import numpy as np
    >>> from scaleforge.workloads.clustering.reservoir import make_reservoir_weights
    >>> w = make_reservoir_weights(5, spectral_radius=0.9, sparsity=0.5, input_scaling=1.0,
    ...                            bias_scaling=0.1, rng=np.random.default_rng(0))
    >>> run_esn(np.zeros((2, 3)), w, leak_rate=0.5).shape
    (2, 3, 5)
    """
    be = backend or NumpyBackend()
    n, steps = X.shape
    u = be.asarray(X)
    w_in, w_t, bias = be.asarray(weights.w_in), be.asarray(weights.w.T), be.asarray(weights.bias)
    h = be.zeros((n, weights.size))
    out = []
    for t in range(steps):
        h = (1.0 - leak_rate) * h + leak_rate * be.tanh(u[:, t : t + 1] * w_in + h @ w_t + bias)
        out.append(h[:, None, :])
    if not out:
        return np.zeros((n, 0, weights.size))
    return be.to_numpy(be.cat(out, axis=1))


def esn_features(
    X: NDArray[np.float64],
    weights: ReservoirWeights,
    *,
    leak_rate: float,
    washout: int,
    representation: str = "states",
    ridge: float = 1.0,
    backend: Backend | None = None,
) -> NDArray[np.float64]:
    """Compute the ESN representation of each series.

    Parameters
    ----------
    X : ndarray of shape (n_series, n_steps)
        Input series (finite; validated by the caller).
    weights : ReservoirWeights
        The reservoir.
    leak_rate : float
        Leak rate in (0, 1].
    washout : int
        Initial steps whose states are discarded (transient from the zero state);
        clipped to ``(n_steps - 1) // 2`` so short series keep states.
    representation : {"states", "model_space"}, default="states"
        Which features to return (see the module docstring).
    ridge : float, default=1.0
        Ridge penalty of the per-series readout (``"model_space"`` only); > 0.
    backend : Backend or None, default=None
        numpy when None; torch for the GPU path.

    Returns
    -------
    ndarray of shape (n_series, 2 * R) or (n_series, R + 1)
        The features, float64 numpy whatever the backend.
    """
    be = backend or NumpyBackend()
    n, steps = X.shape
    r = weights.size
    washout = min(washout, max(steps - 1, 0) // 2)
    u = be.asarray(X)
    w_in, w_t, bias = be.asarray(weights.w_in), be.asarray(weights.w.T), be.asarray(weights.bias)
    h = be.zeros((n, r))
    s1, s2 = be.zeros((n, r)), be.zeros((n, r))
    model_space = representation == "model_space"
    gram: Any = be.zeros((n, r + 2, r + 2)) if model_space else None
    ones = be.asarray(np.ones((n, 1)))
    block: list[Any] = []
    for t in range(steps):
        h = (1.0 - leak_rate) * h + leak_rate * be.tanh(u[:, t : t + 1] * w_in + h @ w_t + bias)
        if t < washout:
            continue
        if not model_space:
            s1 = s1 + h
            s2 = s2 + h * h
        elif t < steps - 1:
            # [state, intercept, next input]: one Gram matrix holds S^T S and S^T u.
            block.append(be.cat([h, ones, u[:, t + 1 : t + 2]], axis=1)[:, None, :])
            if len(block) == _BLOCK:
                gram += be.batched_gram(be.cat(block, axis=1))
                block = []
    count = float(steps - washout)
    if not model_space:
        mean = s1 / count
        std = be.sqrt(be.maximum(s2 / count - mean * mean, 0.0))
        return be.to_numpy(be.cat([mean, std], axis=1))
    if block:
        gram += be.batched_gram(be.cat(block, axis=1))
    eye = be.asarray(ridge * np.eye(r + 1))
    readout = be.solve(gram[:, : r + 1, : r + 1] + eye, gram[:, : r + 1, r + 1])
    return be.to_numpy(readout)
