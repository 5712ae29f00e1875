"""Reservoir representations of a batch of series, optionally cached by content.

:func:`reservoir_features` runs the ESN, the LSM or both (``"hybrid"``) and
returns the feature matrix with the width of each block, so that the
estimator can scale the blocks of a hybrid to equal weight. With
``cache=True`` the computation goes through :func:`scaleforge.cached`, keyed
by the *content* of the input array and of the reservoir weights (never by
``str(array)``, which numpy abbreviates with ``...`` for large arrays, so that
two different large inputs would collide).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge.workloads.clustering.esn import esn_features
from scaleforge.workloads.clustering.lsm import lsm_features
from scaleforge.workloads.clustering.reservoir import ReservoirWeights, get_backend

__all__ = ["METHODS", "reservoir_features"]

logger = logging.getLogger(__name__)

METHODS = ("esn", "lsm", "hybrid")

# Bump when the feature arithmetic changes, so cached representations are recomputed.
_FEATURES_VERSION = "1"

_cached_compute: Callable[..., tuple[NDArray[np.float64], tuple[int, ...]]] | None = None


def _compute(
    X: NDArray[np.float64],
    method: str,
    esn_w_in: NDArray[np.float64] | None,
    esn_w: NDArray[np.float64] | None,
    esn_bias: NDArray[np.float64] | None,
    lsm_w_in: NDArray[np.float64] | None,
    lsm_w: NDArray[np.float64] | None,
    lsm_bias: NDArray[np.float64] | None,
    leak_rate: float,
    washout: int,
    representation: str,
    ridge: float,
    membrane_time_constant: float,
    refractory_period: int,
    backend: str = "auto",
) -> tuple[NDArray[np.float64], tuple[int, ...]]:
    be = get_backend(backend)
    blocks: list[NDArray[np.float64]] = []
    if method in ("esn", "hybrid"):
        assert esn_w_in is not None and esn_w is not None and esn_bias is not None  # set by the estimator
        weights = ReservoirWeights(esn_w_in, esn_w, esn_bias)
        blocks.append(
            esn_features(
                X,
                weights,
                leak_rate=leak_rate,
                washout=washout,
                representation=representation,
                ridge=ridge,
                backend=be,
            )
        )
    if method in ("lsm", "hybrid"):
        assert lsm_w_in is not None and lsm_w is not None and lsm_bias is not None  # set by the estimator
        weights = ReservoirWeights(lsm_w_in, lsm_w, lsm_bias)
        blocks.append(
            lsm_features(
                X,
                weights,
                membrane_time_constant=membrane_time_constant,
                refractory_period=refractory_period,
                washout=washout,
                backend=be,
            )
        )
    return np.concatenate(blocks, axis=1), tuple(b.shape[1] for b in blocks)


def _get_cached_compute() -> Callable[..., tuple[NDArray[np.float64], tuple[int, ...]]] | None:
    global _cached_compute
    if _cached_compute is None:
        try:
            from scaleforge.cache.decorators import cached
        except ModuleNotFoundError as exc:  # the cache layer is optional at run time
            logger.warning("reservoir feature cache unavailable (%s); computing without it", exc)
            return None
        _cached_compute = cached(version=_FEATURES_VERSION, ignore=["backend"])(_compute)
    return _cached_compute


def reservoir_features(
    X: NDArray[np.float64],
    *,
    method: str,
    esn_weights: ReservoirWeights | None,
    lsm_weights: ReservoirWeights | None,
    leak_rate: float,
    washout: int,
    representation: str,
    ridge: float,
    membrane_time_constant: float,
    refractory_period: int,
    backend: str = "auto",
    cache: bool = False,
) -> tuple[NDArray[np.float64], tuple[int, ...]]:
    """Compute the reservoir representation of every series.

    Parameters
    ----------
    X : ndarray of shape (n_series, n_steps)
        Validated, finite input.
    method : {"esn", "lsm", "hybrid"}
        Which reservoir(s) to run; ``"hybrid"`` concatenates ESN then LSM features.
    esn_weights, lsm_weights : ReservoirWeights or None
        The reservoirs (the one the method needs must be given).
    leak_rate, washout, representation, ridge : see :func:`.esn.esn_features`
    membrane_time_constant, refractory_period : see :func:`.lsm.lsm_features`
    backend : {"auto", "numpy", "torch"}, default="auto"
        Where the loops run; not part of the cache key (all backends agree).
    cache : bool, default=False
        Memoise through :func:`scaleforge.cached` (content-hash keys).

    Returns
    -------
    features : ndarray of shape (n_series, n_features)
    block_widths : tuple of int
        Width of each block (one for esn/lsm, two for hybrid).
    """
    args: dict[str, Any] = {
        "esn_w_in": None if esn_weights is None else esn_weights.w_in,
        "esn_w": None if esn_weights is None else esn_weights.w,
        "esn_bias": None if esn_weights is None else esn_weights.bias,
        "lsm_w_in": None if lsm_weights is None else lsm_weights.w_in,
        "lsm_w": None if lsm_weights is None else lsm_weights.w,
        "lsm_bias": None if lsm_weights is None else lsm_weights.bias,
        "leak_rate": float(leak_rate),
        "washout": int(washout),
        "representation": representation,
        "ridge": float(ridge),
        "membrane_time_constant": float(membrane_time_constant),
        "refractory_period": int(refractory_period),
        "backend": backend,
    }
    fn = _get_cached_compute() if cache else None
    if fn is None:
        return _compute(X, method, **args)
    features, widths = fn(np.ascontiguousarray(X), method, **args)
    return np.asarray(features, dtype=np.float64), tuple(int(w) for w in widths)
