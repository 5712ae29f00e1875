"""Verification of the PDE workload against known answers.

* :func:`convergence_study` — manufactured ``u = sin πx sin πy`` (``f = 2π² u``):
  P1 L2 rate ~2 and H1 rate ~1 (P2: 3 and 2), fitted over the refinements.
* :func:`adjoint_check` — adjoint gradient vs central finite differences along a
  random direction.
* :func:`inverse_check` — coarse log-κ recovered from noisy data (relative L2 of κ).
* :func:`burgers_check` — Burgers n vs 2n (half the time step) self-convergence,
  and :func:`burgers_cole_hopf_error` against the exact Cole–Hopf solution.
* :func:`darcy_fem_check` — the FV Darcy solver vs P1 FEM on the same smooth κ:
  the difference shrinks at second order as the grids refine;
  :func:`darcy_recipe_check` does the same for the discontinuous recipe κ (12 / 3),
  where both schemes are first order.

:func:`run_verification` runs all of them and returns the figures with their
targets (``scaleforge pde verify --json`` prints it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge.workloads.pde.burgers import burgers_grid, solve_burgers
from scaleforge.workloads.pde.darcy import darcy_fv_grid, solve_darcy_fv
from scaleforge.workloads.pde.grf import grf_1d

__all__ = [
    "TARGETS",
    "adjoint_check",
    "burgers_check",
    "burgers_cole_hopf_error",
    "convergence_study",
    "darcy_fem_check",
    "darcy_recipe_check",
    "fit_rate",
    "inverse_check",
    "run_verification",
]

#: Acceptance thresholds (issue 4).
TARGETS: dict[str, tuple[str, float]] = {
    "p1_l2_rate": (">=", 1.9),
    "p1_h1_rate": (">=", 0.9),
    "adjoint_rel_error": ("<=", 1e-6),
    "inverse_kappa_rel_error": ("<=", 0.05),
    "burgers_rel_error": ("<=", 1e-3),
    "darcy_fv_fem_rate": (">=", 1.5),
}

_PI = np.pi


def _exact(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(np.sin(_PI * x) * np.sin(_PI * y))


def _exact_grad(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    return _PI * np.cos(_PI * x) * np.sin(_PI * y), _PI * np.sin(_PI * x) * np.cos(_PI * y)


def _source(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    return 2 * _PI**2 * _exact(x, y)


def fit_rate(h: Sequence[float], err: Sequence[float]) -> float:
    """Least-squares slope of ``log err`` against ``log h``.

    Parameters
    ----------
    h, err : sequence of float

    Returns
    -------
    float
    """
    return float(np.polyfit(np.log(np.asarray(h)), np.log(np.asarray(err)), 1)[0])


def convergence_study(levels: Sequence[int] = (8, 16, 32, 64, 128), degree: int = 1) -> dict[str, Any]:
    """Errors and rates for the manufactured solution ``sin πx sin πy`` on ``unit_square(n)``.

    Parameters
    ----------
    levels : sequence of int, default=(8, 16, 32, 64, 128)
        Cells per side (>= 2 levels; 5 levels = 4 refinements).
    degree : {1, 2}, default=1

    Returns
    -------
    dict
        ``h``, ``l2``, ``h1`` lists and fitted ``l2_rate``, ``h1_rate``.
    """
    from scaleforge.workloads.pde.fem import solve_poisson
    from scaleforge.workloads.pde.mesh import unit_square

    hs, l2s, h1s = [], [], []
    for n in levels:
        sol = solve_poisson(unit_square(n), 1.0, _source, degree=degree)
        l2, h1 = sol.errors(_exact, _exact_grad)
        hs.append(1.0 / n)
        l2s.append(l2)
        h1s.append(h1)
    return {"h": hs, "l2": l2s, "h1": h1s, "l2_rate": fit_rate(hs, l2s), "h1_rate": fit_rate(hs, h1s)}


def adjoint_check(n: int = 16, *, seed: int = 0, eps: float = 1e-6) -> float:
    """Relative difference between the adjoint directional derivative and central differences.

    Parameters
    ----------
    n : int, default=16
        Mesh cells per side.
    seed : int, default=0
        Seeds κ, the data and the direction.
    eps : float, default=1e-6
        Finite-difference step (relative to κ ~ 1).

    Returns
    -------
    float
        ``|fd − gᵀd| / |fd|``.
    """
    from scaleforge.workloads.pde.adjoint import misfit_gradient
    from scaleforge.workloads.pde.inverse import make_inverse_problem

    inv = make_inverse_problem(n, cells=max(2, n // 4) if n % max(2, n // 4) == 0 else n, seed=seed)
    rng = np.random.default_rng(seed)
    kappa = np.exp(0.3 * rng.standard_normal(inv.problem.n_elements))
    direction = rng.standard_normal(kappa.size)
    g = misfit_gradient(inv.problem, kappa, inv.loads, inv.observations).gradient
    jp = misfit_gradient(inv.problem, kappa + eps * direction, inv.loads, inv.observations).value
    jm = misfit_gradient(inv.problem, kappa - eps * direction, inv.loads, inv.observations).value
    fd = (jp - jm) / (2 * eps)
    return float(abs(fd - g @ direction) / abs(fd))


def inverse_check(
    n: int = 64, *, cells: int = 8, noise: float = 0.01, alpha: float = 1e-4, seed: int = 0
) -> dict[str, Any]:
    """Recover log-κ on ``cells × cells`` coarse cells from 4 noisy sources.

    The data are solved on a mesh twice as fine and sampled at the inversion
    mesh's nodes, so the inversion does not share the data's discretisation.

    Parameters
    ----------
    n : int, default=64
    cells : int, default=8
    noise : float, default=0.01
    alpha : float, default=1e-4
    seed : int, default=0

    Returns
    -------
    dict
        ``relative_error``, ``iterations``, ``seconds`` and the ``result``.
    """
    from scaleforge.workloads.pde.inverse import make_inverse_problem, solve_inverse

    # data from a 2x finer mesh: no "inverse crime"
    inv = make_inverse_problem(n, cells=cells, noise=noise, seed=seed, data_refinement=2)
    t0 = time.perf_counter()
    res = solve_inverse(inv, alpha=alpha)
    return {
        "relative_error": res.relative_error,
        "iterations": res.n_iterations,
        "seconds": time.perf_counter() - t0,
        "result": res,
        "theta_true": inv.theta_true,
    }


def _refine_spectral(u: NDArray[np.float64], factor: int) -> NDArray[np.float64]:
    n = u.shape[-1]
    v = np.fft.rfft(u, axis=-1)
    out = np.zeros((*u.shape[:-1], n * factor // 2 + 1), dtype=complex)
    out[..., : n // 2 + 1] = v
    out[..., n // 2] *= 0.5  # split the Nyquist mode between +/- n/2 (keeps the interpolant real)
    return np.asarray(np.fft.irfft(out, n=n * factor, axis=-1) * factor)


def burgers_check(
    n: int = 128, *, samples: int = 8, seed: int = 0, nu: float = 0.02, t_end: float = 0.5, dt: float = 2e-3
) -> float:
    """Relative L2 difference between Burgers at ``n`` / ``dt`` and at ``2n`` / ``dt/2``.

    Parameters
    ----------
    n : int, default=128
    samples : int, default=8
        Random initial conditions of the data generator, batched.
    seed : int, default=0
    nu, t_end, dt : float
        Viscosity, final time, coarse time step.

    Returns
    -------
    float
    """
    u0 = np.stack([grf_1d(np.random.default_rng([seed, i]), n) for i in range(samples)])
    coarse = solve_burgers(u0, nu=nu, t_end=t_end, dt=dt)
    fine = solve_burgers(_refine_spectral(u0, 2), nu=nu, t_end=t_end, dt=dt / 2)[:, ::2]
    return float(np.linalg.norm(coarse - fine) / np.linalg.norm(fine))


def burgers_cole_hopf_error(
    n: int = 128, *, amplitude: float = 0.5, nu: float = 0.02, t_end: float = 0.5, dt: float = 2e-3
) -> float:
    """Relative L2 error of :func:`solve_burgers` against the exact Cole–Hopf solution.

    For ``u₀ = A sin 2πx``, ``u = −2ν φ_x/φ`` with ``φ`` solving the heat equation
    ``φ_t = ν φ_xx`` from ``φ₀ = exp(A cos(2πx) / (4πν))`` (solved exactly in
    Fourier space on a fine grid).

    Parameters
    ----------
    n : int, default=128
    amplitude, nu, t_end, dt : float

    Returns
    -------
    float
    """
    x = burgers_grid(n)
    numeric = solve_burgers(amplitude * np.sin(2 * _PI * x), nu=nu, t_end=t_end, dt=dt)
    m = 4096
    xf = burgers_grid(m)
    phi0 = np.exp(amplitude * np.cos(2 * _PI * xf) / (4 * _PI * nu))
    k = np.fft.rfftfreq(m, d=1.0 / m)
    phat = np.fft.rfft(phi0) * np.exp(-nu * (2 * _PI * k) ** 2 * t_end)
    phi = np.fft.irfft(phat, n=m)
    phix = np.fft.irfft(2j * _PI * k * phat, n=m)
    exact = (-2 * nu * phix / phi)[:: m // n]
    return float(np.linalg.norm(numeric - exact) / np.linalg.norm(exact))


def _smooth_kappa(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 + 0.5 * np.sin(2 * _PI * x) * np.cos(2 * _PI * y))


def darcy_fem_check(resolutions: Sequence[int] = (15, 31, 63)) -> dict[str, Any]:
    """Compare the FV Darcy solver with P1 FEM (f = 1, zero Dirichlet) on the same smooth κ.

    FV unknowns ``((i+1)h, (j+1)h)``, ``h = 1/(s+1)``, coincide with the interior
    nodes of ``unit_square(s+1)``; both schemes are second order, so the maximum
    relative difference must fall like ``h²``.

    Parameters
    ----------
    resolutions : sequence of int, default=(15, 31, 63)
        FV grid sides ``s``.

    Returns
    -------
    dict
        ``h``, ``difference`` (max |u_FV − u_FEM| / max |u_FEM|) and fitted ``rate``.
    """
    from scaleforge.workloads.pde.fem import solve_poisson
    from scaleforge.workloads.pde.mesh import unit_square

    hs, diffs = [], []
    for s in resolutions:
        grid = darcy_fv_grid(s)
        u_fv = solve_darcy_fv(_smooth_kappa(grid[..., 0], grid[..., 1]))
        mesh = unit_square(s + 1)
        sol = solve_poisson(mesh, _smooth_kappa, 1.0)
        # node (i, j) of the tensor mesh: look nodes up by coordinates
        p = mesh.p.T
        ij = np.rint(p * (s + 1)).astype(int)
        u_nodes = np.zeros((s + 2, s + 2))
        u_nodes[ij[:, 0], ij[:, 1]] = sol.u
        u_fem = u_nodes[1:-1, 1:-1]
        hs.append(1.0 / (s + 1))
        diffs.append(float(np.max(np.abs(u_fv - u_fem)) / np.max(np.abs(u_fem))))
    return {"h": hs, "difference": diffs, "rate": fit_rate(hs, diffs)}


def _recipe_kappa(seed: int, modes: int = 16) -> Any:
    """κ = 12 / 3 thresholded from a band-limited periodic GRF given as a function of (x, y)."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(modes, d=1.0 / modes)
    amp = (4 * _PI**2 * (k[:, None] ** 2 + k[None, :] ** 2) + 9.0) ** -1.0
    coef = amp * (rng.standard_normal((modes, modes)) + 1j * rng.standard_normal((modes, modes)))

    def kappa(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        ex = np.exp(2j * _PI * np.multiply.outer(x, k))
        ey = np.exp(2j * _PI * np.multiply.outer(y, k))
        field = np.einsum("...i,ij,...j->...", ex, coef, ey).real
        return np.where(field >= 0.0, 12.0, 3.0)

    return kappa


def darcy_recipe_check(resolutions: Sequence[int] = (15, 31, 63), *, seed: int = 0) -> dict[str, Any]:
    """FV vs P1 FEM on the same *discontinuous* Darcy-recipe κ (12 / 3 from a thresholded GRF).

    κ is a function of (x, y), sampled by each scheme where it needs it (FV at the
    unknowns, FEM by element quadrature), so the two solve the same continuous
    problem. With jumps in κ both schemes lose an order; the difference must still
    shrink as the grids refine.

    Parameters
    ----------
    resolutions : sequence of int, default=(15, 31, 63)
    seed : int, default=0

    Returns
    -------
    dict
        ``h``, ``difference`` (max relative) and fitted ``rate``.
    """
    from scaleforge.workloads.pde.fem import solve_poisson
    from scaleforge.workloads.pde.mesh import unit_square

    kappa = _recipe_kappa(seed)
    hs, diffs = [], []
    for s in resolutions:
        grid = darcy_fv_grid(s)
        u_fv = solve_darcy_fv(kappa(grid[..., 0], grid[..., 1]))
        mesh = unit_square(s + 1)
        sol = solve_poisson(mesh, kappa, 1.0)
        ij = np.rint(mesh.p.T * (s + 1)).astype(int)
        u_nodes = np.zeros((s + 2, s + 2))
        u_nodes[ij[:, 0], ij[:, 1]] = sol.u
        hs.append(1.0 / (s + 1))
        diffs.append(float(np.max(np.abs(u_fv - u_nodes[1:-1, 1:-1])) / np.max(np.abs(u_nodes))))
    return {"h": hs, "difference": diffs, "rate": fit_rate(hs, diffs)}


def _passed(name: str, value: float) -> bool:
    op, limit = TARGETS[name]
    return bool(value >= limit) if op == ">=" else bool(value <= limit)


def run_verification(*, quick: bool = False) -> dict[str, Any]:
    """Run every check and return the figures, targets and pass/fail flags.

    Parameters
    ----------
    quick : bool, default=False
        Smaller sizes (inverse problem at 32², 4 refinements from 4) for a fast smoke run.

    Returns
    -------
    dict
        JSON-serialisable: ``metrics`` (figures), ``targets``, ``passed`` (per metric),
        ``all_passed`` and ``details``.
    """
    t0 = time.perf_counter()
    conv = convergence_study((4, 8, 16, 32, 64) if quick else (8, 16, 32, 64, 128))
    p2 = convergence_study((4, 8, 16, 32), degree=2)
    adj = adjoint_check(16)
    inv = inverse_check(32 if quick else 64)
    burg = burgers_check(128)
    hopf = burgers_cole_hopf_error(128)
    darcy = darcy_fem_check((15, 31) if quick else (15, 31, 63))
    recipe = darcy_recipe_check((15, 31) if quick else (15, 31, 63))
    metrics = {
        "p1_l2_rate": conv["l2_rate"],
        "p1_h1_rate": conv["h1_rate"],
        "p2_l2_rate": p2["l2_rate"],
        "p2_h1_rate": p2["h1_rate"],
        "adjoint_rel_error": adj,
        "inverse_kappa_rel_error": inv["relative_error"],
        "inverse_iterations": inv["iterations"],
        "burgers_rel_error": burg,
        "burgers_cole_hopf_error": hopf,
        "darcy_fv_fem_difference": darcy["difference"][-1],
        "darcy_fv_fem_rate": darcy["rate"],
        "darcy_recipe_fv_fem_difference": recipe["difference"][-1],
        "darcy_recipe_fv_fem_rate": recipe["rate"],
    }
    passed = {name: _passed(name, float(metrics[name])) for name in TARGETS}
    return {
        "metrics": metrics,
        "targets": {k: f"{op} {v}" for k, (op, v) in TARGETS.items()},
        "passed": passed,
        "all_passed": all(passed.values()),
        "seconds": time.perf_counter() - t0,
        "details": {
            "convergence": {k: conv[k] for k in ("h", "l2", "h1")},
            "darcy": {k: darcy[k] for k in ("h", "difference")},
            "darcy_recipe": {k: recipe[k] for k in ("h", "difference")},
            "inverse_mesh": 32 if quick else 64,
        },
    }
