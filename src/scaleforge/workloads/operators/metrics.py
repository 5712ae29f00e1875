"""Accuracy and calibration metrics for probabilistic field predictions.

All functions take numpy arrays whose first axis indexes samples (fields) and
whose remaining axes are the grid, and return Python floats averaged over every
grid point of every sample unless said otherwise. Predictive distributions are
Gaussian per point (``mean``, ``std``) or given by samples.

Examples
--------
>>> import numpy as np
>>> y = np.zeros((1, 4)); mu = np.zeros((1, 4)); sd = np.ones((1, 4))
>>> round(crps_gaussian(y, mu, sd), 6)  # sigma * (2 phi(0) - 1/sqrt(pi))
0.233695
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr, ndtri

from scaleforge.errors import InvalidParameterError

__all__ = [
    "calibration_curve",
    "coverage",
    "crps_gaussian",
    "crps_samples",
    "energy_score",
    "evaluate_gaussian",
    "gaussian_nll",
    "interval_width",
    "rel_l2",
]

_SQRT_PI = math.sqrt(math.pi)
_LOG_2PI = math.log(2.0 * math.pi)


def _arrays(name: str, *arrays: ArrayLike) -> list[NDArray[np.float64]]:
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    shape = out[0].shape
    for a in out[1:]:
        if a.shape != shape:
            raise InvalidParameterError(
                f"{name} needs arrays of one shape; got {[x.shape for x in out]}. "
                "Pass y_true, mean and std for the same fields on the same grid."
            )
    if out[0].ndim < 1 or out[0].size == 0:
        raise InvalidParameterError(f"{name} needs non-empty arrays of shape (n_samples, ...). Got {shape}.")
    for a in out:
        if not np.all(np.isfinite(a)):
            raise InvalidParameterError(f"{name} got NaN or infinite values; clean the predictions first.")
    return out


def _std(name: str, std: NDArray[np.float64]) -> NDArray[np.float64]:
    if np.any(std <= 0):
        raise InvalidParameterError(
            f"The 'std' argument of {name} must be > 0 everywhere. Got min {float(std.min())!r}; "
            "clip it, e.g. np.maximum(std, 1e-8)."
        )
    return std


def _level(level: float, name: str) -> float:
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not 0.0 < level < 1.0:
        raise InvalidParameterError(
            f"The 'level' parameter of {name} must be in (0, 1). Got {level!r} instead."
        )
    return float(level)


def rel_l2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean over samples of ``||y_pred - y_true|| / ||y_true||`` (the FNO metric).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples, *grid)

    Returns
    -------
    float
    """
    yt, yp = _arrays("rel_l2", y_true, y_pred)
    n = yt.shape[0]
    num = np.linalg.norm((yp - yt).reshape(n, -1), axis=1)
    den = np.linalg.norm(yt.reshape(n, -1), axis=1)
    if np.any(den == 0):
        raise InvalidParameterError("rel_l2 is undefined for an all-zero true field; use an absolute error.")
    return float(np.mean(num / den))


def gaussian_nll(y_true: ArrayLike, mean: ArrayLike, std: ArrayLike) -> float:
    """Mean negative log-density of ``y_true`` under N(mean, std²), per grid point.

    Parameters
    ----------
    y_true, mean, std : array-like of one shape

    Returns
    -------
    float
    """
    y, m, s = _arrays("gaussian_nll", y_true, mean, std)
    s = _std("gaussian_nll", s)
    return float(np.mean(0.5 * _LOG_2PI + np.log(s) + 0.5 * ((y - m) / s) ** 2))


def crps_gaussian(y_true: ArrayLike, mean: ArrayLike, std: ArrayLike) -> float:
    """Mean closed-form CRPS of N(mean, std²) at ``y_true``.

    ``CRPS = σ [z (2Φ(z) − 1) + 2 φ(z) − 1/√π]`` with ``z = (y − μ)/σ``
    (Gneiting & Raftery 2007); lower is better and it is never negative.

    Parameters
    ----------
    y_true, mean, std : array-like of one shape

    Returns
    -------
    float
    """
    y, m, s = _arrays("crps_gaussian", y_true, mean, std)
    s = _std("crps_gaussian", s)
    z = (y - m) / s
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    return float(np.mean(s * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * pdf - 1.0 / _SQRT_PI)))


def _samples(
    name: str, y_true: ArrayLike, samples: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    y = np.asarray(y_true, dtype=np.float64)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != y.ndim + 1 or x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[1:] or x.shape[1] < 2:
        raise InvalidParameterError(
            f"{name} needs samples of shape (n_samples, m, *grid) with m >= 2 matching y_true {y.shape}. "
            f"Got {x.shape}."
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvalidParameterError(f"{name} got NaN or infinite values.")
    return y, x


def crps_samples(y_true: ArrayLike, samples: ArrayLike) -> float:
    """Mean pointwise CRPS estimated from an ensemble: ``E|X − y| − ½ E|X − X'|``.

    Uses the fair (unbiased) estimator with ``m (m − 1)`` pairs.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, *grid)
    samples : array-like of shape (n_samples, m, *grid)

    Returns
    -------
    float
    """
    y, x = _samples("crps_samples", y_true, samples)
    m = x.shape[1]
    term1 = np.mean(np.abs(x - y[:, None]), axis=1)
    # sum_{j,k} |x_j - x_k| from sorted samples: 2 * sum_i (2i - m + 1) x_(i)
    xs = np.sort(x, axis=1)
    w = (2.0 * np.arange(m) - m + 1.0).reshape((1, m) + (1,) * (x.ndim - 2))
    pair_sum = 2.0 * np.sum(w * xs, axis=1)
    return float(np.mean(term1 - pair_sum / (2.0 * m * (m - 1))))


def energy_score(y_true: ArrayLike, samples: ArrayLike) -> float:
    """Mean energy score of whole-field samples: ``E||X − y|| − ½ E||X − X'||``.

    Norms are Euclidean over the grid, divided by ``sqrt(grid size)`` so that the
    score of a field does not grow with resolution; the fair estimator is used.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, *grid)
    samples : array-like of shape (n_samples, m, *grid)

    Returns
    -------
    float
    """
    y, x = _samples("energy_score", y_true, samples)
    n, m = x.shape[:2]
    xf = x.reshape(n, m, -1)
    yf = y.reshape(n, 1, -1)
    scale = math.sqrt(xf.shape[-1])
    term1 = np.linalg.norm(xf - yf, axis=-1).mean(axis=1) / scale
    d = np.linalg.norm(xf[:, :, None, :] - xf[:, None, :, :], axis=-1) / scale
    term2 = d.sum(axis=(1, 2)) / (2.0 * m * (m - 1))
    return float(np.mean(term1 - term2))


def coverage(y_true: ArrayLike, mean: ArrayLike, std: ArrayLike, level: float = 0.9) -> float:
    """Fraction of points inside the central ``level`` interval of N(mean, std²).

    Parameters
    ----------
    y_true, mean, std : array-like of one shape
    level : float, default=0.9
        Nominal coverage in (0, 1).

    Returns
    -------
    float
    """
    level = _level(level, "coverage")
    y, m, s = _arrays("coverage", y_true, mean, std)
    s = _std("coverage", s)
    half = float(ndtri(0.5 + level / 2.0))
    return float(np.mean(np.abs(y - m) <= half * s))


def interval_width(std: ArrayLike, level: float = 0.9) -> float:
    """Mean width of the central ``level`` Gaussian interval, ``2 z σ``.

    Parameters
    ----------
    std : array-like
    level : float, default=0.9

    Returns
    -------
    float
    """
    level = _level(level, "interval_width")
    (s,) = _arrays("interval_width", std)
    return float(2.0 * ndtri(0.5 + level / 2.0) * np.mean(s))


def calibration_curve(
    y_true: ArrayLike, mean: ArrayLike, std: ArrayLike, levels: Sequence[float] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Observed coverage of central intervals against their nominal level.

    A calibrated model lies on the diagonal; below it is over-confident.

    Parameters
    ----------
    y_true, mean, std : array-like of one shape
    levels : sequence of float, optional
        Nominal levels in (0, 1); default 0.05, 0.10, ..., 0.95.

    Returns
    -------
    nominal, observed : ndarray of shape (n_levels,)
    """
    y, m, s = _arrays("calibration_curve", y_true, mean, std)
    s = _std("calibration_curve", s)
    nominal = np.asarray(levels if levels is not None else np.arange(1, 20) / 20.0, dtype=np.float64)
    for lv in nominal:
        _level(float(lv), "calibration_curve")
    z = np.abs(y - m) / s
    half = ndtri(0.5 + nominal / 2.0)
    observed = np.array([np.mean(z <= h) for h in half])
    return nominal, observed


def evaluate_gaussian(y_true: ArrayLike, mean: ArrayLike, std: ArrayLike) -> dict[str, float]:
    """All Gaussian metrics at once.

    Parameters
    ----------
    y_true, mean, std : array-like of shape (n_samples, *grid)

    Returns
    -------
    dict
        ``rel_l2``, ``nll``, ``crps``, ``cov50``, ``cov90``, ``cov95``, ``width90``
        and ``calibration_error`` (mean absolute gap of the calibration curve).
    """
    nominal, observed = calibration_curve(y_true, mean, std)
    return {
        "rel_l2": rel_l2(y_true, mean),
        "nll": gaussian_nll(y_true, mean, std),
        "crps": crps_gaussian(y_true, mean, std),
        "cov50": coverage(y_true, mean, std, 0.5),
        "cov90": coverage(y_true, mean, std, 0.9),
        "cov95": coverage(y_true, mean, std, 0.95),
        "width90": interval_width(std, 0.9),
        "calibration_error": float(np.mean(np.abs(nominal - observed))),
    }
