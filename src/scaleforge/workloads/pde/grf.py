"""Gaussian random fields on periodic grids, sampled by FFT.

A field with covariance ``sigma**2 * (-Δ + tau**2 I)**(-alpha)`` on the periodic
unit square (or interval) has independent Fourier coefficients with standard
deviation ``sigma * (4π²|k|² + tau**2)**(-alpha/2)``. We draw complex normal
coefficients ``(g1 + i g2)/√2`` for every wavenumber of the ``s``-point FFT
grid, scale them, and keep the real part of the inverse transform. The real
part halves the variance of each mode, so the pointwise variance is
``Σ_{k≠0 or k=0 kept} amplitude(k)**2 / 2`` summed over all (signed) ``k``;
this is the construction behind the FNO data sets and the figures of
WORKLOADS-REFERENCE.md (Burgers u₀ std 0.42).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError

__all__ = ["grf_1d", "grf_2d", "grf_variance_1d"]


def _check_rng(rng: object, owner: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise InvalidParameterError(
            f"The 'rng' parameter of {owner} must be a numpy.random.Generator, e.g. "
            f"numpy.random.default_rng([seed, index]). Got {type(rng).__name__} instead."
        )
    return rng


def _amplitude(k2: NDArray[np.float64], alpha: float, tau: float, sigma: float) -> NDArray[np.float64]:
    return sigma * (4.0 * np.pi**2 * k2 + tau**2) ** (-alpha / 2.0)


def grf_1d(
    rng: np.random.Generator,
    n: int,
    *,
    alpha: float = 2.0,
    tau: float = 5.0,
    sigma: float = 25.0,
    zero_mean: bool = True,
    size: int | None = None,
) -> NDArray[np.float64]:
    """Sample a periodic 1D Gaussian random field on ``n`` equispaced points of [0, 1).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (use ``default_rng([seed, index])`` for reproducible samples).
    n : int
        Number of grid points, >= 4.
    alpha, tau, sigma : float, default=2.0, 5.0, 25.0
        Covariance ``sigma² (-Δ + tau² I)^(-alpha)``. The defaults give the Burgers
        initial condition ``N(0, 625 (-Δ + 25 I)^(-2))``.
    zero_mean : bool, default=True
        Drop the k = 0 mode so every sample has mean exactly zero.
    size : int or None, default=None
        Draw ``size`` fields at once (shape ``(size, n)``); ``None`` gives shape ``(n,)``.

    Returns
    -------
    ndarray of shape (n,) or (size, n)

    Raises
    ------
    InvalidParameterError
        For ``n < 4``, non-positive ``tau``/``sigma``/``alpha`` or a non-Generator ``rng``.
    """
    _check_rng(rng, "grf_1d")
    check_number(n, "n", "grf_1d", minimum=4, integer=True)
    for name, value in (("alpha", alpha), ("tau", tau), ("sigma", sigma)):
        check_number(value, name, "grf_1d", minimum=0, exclusive_minimum=True)
    shape = (n,) if size is None else (size, n)
    k = np.fft.fftfreq(n, d=1.0 / n)
    amp = _amplitude(np.asarray(k**2, dtype=np.float64), alpha, tau, sigma)
    if zero_mean:
        amp[0] = 0.0
    xi = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2.0)
    field = np.fft.ifft(amp * xi, axis=-1).real * n
    return np.ascontiguousarray(field, dtype=np.float64)


def grf_variance_1d(n: int, *, alpha: float = 2.0, tau: float = 5.0, sigma: float = 25.0) -> float:
    """Pointwise variance of :func:`grf_1d` with ``zero_mean=True`` (closed form).

    Parameters
    ----------
    n : int
        Number of grid points.
    alpha, tau, sigma : float
        As in :func:`grf_1d`.

    Returns
    -------
    float
        ``Σ_{k≠0} amplitude(k)² / 2`` over the ``n`` FFT wavenumbers.
    """
    k = np.fft.fftfreq(n, d=1.0 / n)[1:]
    return float(np.sum(_amplitude(np.asarray(k**2, dtype=np.float64), alpha, tau, sigma) ** 2) / 2.0)


def grf_2d(
    rng: np.random.Generator,
    s: int,
    *,
    alpha: float = 2.0,
    tau: float = 3.0,
    sigma: float = 1.0,
) -> NDArray[np.float64]:
    """Sample a periodic 2D Gaussian random field on an ``s × s`` grid of [0, 1)².

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    s : int
        Grid points per side, >= 4.
    alpha, tau, sigma : float, default=2.0, 3.0, 1.0
        Covariance ``sigma² (-Δ + tau² I)^(-alpha)``; the defaults are the FNO Darcy
        recipe ``N(0, (-Δ + 9 I)^(-2))``.

    Returns
    -------
    ndarray of shape (s, s)

    Raises
    ------
    InvalidParameterError
        For ``s < 4``, non-positive parameters or a non-Generator ``rng``.
    """
    _check_rng(rng, "grf_2d")
    check_number(s, "s", "grf_2d", minimum=4, integer=True)
    for name, value in (("alpha", alpha), ("tau", tau), ("sigma", sigma)):
        check_number(value, name, "grf_2d", minimum=0, exclusive_minimum=True)
    k = np.fft.fftfreq(s, d=1.0 / s)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    amp = _amplitude(np.asarray(k2, dtype=np.float64), alpha, tau, sigma)
    xi = (rng.standard_normal((s, s)) + 1j * rng.standard_normal((s, s))) / np.sqrt(2.0)
    field = np.fft.ifft2(amp * xi).real * (s * s)
    return np.ascontiguousarray(field, dtype=np.float64)
