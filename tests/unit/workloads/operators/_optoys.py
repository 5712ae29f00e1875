"""Small synthetic operator-learning problems with known structure (helpers for the operator tests)."""

from __future__ import annotations

import numpy as np


def smooth_fields(
    n: int, s: int, rng: np.random.Generator, decay: float = 2.0, n_modes: int = 8
) -> np.ndarray:
    """Random zero-mean periodic fields with ``n_modes`` frequencies decaying as (1 + k)^-decay.

    The coefficients do not depend on ``s``: every grid with ``s > 2 n_modes`` samples the same functions.
    """
    k = np.arange(n_modes)
    c = (rng.normal(size=(n, n_modes)) + 1j * rng.normal(size=(n, n_modes))) / (1.0 + k) ** decay
    c[:, 0] = 0.0
    full = np.zeros((n, s // 2 + 1), dtype=complex)
    full[:, :n_modes] = c
    return np.fft.irfft(full, n=s) * s / 4.0


def heat_operator(x: np.ndarray, t: float = 0.005) -> np.ndarray:
    """Linear smoothing exp(t Δ) on the periodic unit interval."""
    s = x.shape[-1]
    k = np.fft.rfftfreq(s, 1.0 / s)
    return np.fft.irfft(np.fft.rfft(x) * np.exp(-t * (2 * np.pi * k) ** 2), n=s)


def make_toy(n: int, s: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x -> heat(x) + 0.3 x²: a smooth nonlinear operator."""
    rng = np.random.default_rng(seed)
    x = smooth_fields(n, s, rng)
    return x, heat_operator(x) + 0.3 * x**2


TINY = {"width": 12, "modes": 6, "depth": 2, "hidden": 16}
