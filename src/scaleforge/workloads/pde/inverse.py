"""Inverse conductivity problem: recover log-κ on a coarse grid of cells from noisy solutions.

Unknown ``θ`` (shape ``(cells, cells)``), ``κ_e = exp(θ[c(e)])`` where ``c(e)`` is
the coarse cell containing element e's centroid. Data: P1 solutions for several
sources (default ``{1, sin πx, sin πy, xy}``) observed at every free node with
Gaussian noise of ``noise × max|u_s|``. Objective

    Φ(θ) = Σ_s ½ ‖u_s(θ) − d_s‖² / ‖d_s‖² + ½ α θᵀ L θ,

with L the 5-point graph Laplacian of the coarse grid (Tikhonov regularisation
of the gradient of θ). The gradient comes from
:func:`~scaleforge.workloads.pde.adjoint.misfit_gradient` (chain rule
``∂Φ/∂θ_c = Σ_{e∈c} κ_e ∂J/∂κ_e``) and the minimiser is scipy's L-BFGS-B.
Recipe and figures: WORKLOADS-REFERENCE.md ("Inverse conductivity").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.pde.adjoint import misfit_gradient
from scaleforge.workloads.pde.fem import PoissonProblem
from scaleforge.workloads.pde.mesh import unit_square

__all__ = [
    "DEFAULT_SOURCES",
    "InverseProblem",
    "InverseResult",
    "default_log_kappa",
    "make_inverse_problem",
    "solve_inverse",
]

DEFAULT_SOURCES: tuple[Callable[..., Any], ...] = (
    lambda x, y: 1.0 + 0.0 * x,
    lambda x, y: np.sin(np.pi * x),
    lambda x, y: np.sin(np.pi * y),
    lambda x, y: x * y,
)


def default_log_kappa(cells: int = 8) -> NDArray[np.float64]:
    """A smooth reference log-κ on the coarse grid (range about ±0.8).

    Parameters
    ----------
    cells : int, default=8
        Coarse cells per side.

    Returns
    -------
    ndarray of shape (cells, cells)
        ``θ[i, j]`` at cell centre ``(x_i, y_j)`` ("ij" indexing).
    """
    c = (np.arange(cells) + 0.5) / cells
    x, y = np.meshgrid(c, c, indexing="ij")
    return np.asarray(0.6 * np.sin(2 * np.pi * x) * np.sin(np.pi * y) + 0.4 * np.cos(np.pi * (x + y)))


def _coarse_laplacian(cells: int) -> sp.csr_matrix:
    d = sp.diags([-np.ones(cells - 1), np.ones(cells - 1)], [0, 1], shape=(cells - 1, cells))
    eye = sp.identity(cells)
    gx = sp.kron(d, eye)
    gy = sp.kron(eye, d)
    return sp.csr_matrix(gx.T @ gx + gy.T @ gy)


@dataclass(frozen=True, eq=False)
class InverseProblem:
    """Everything that defines one inverse problem instance.

    Attributes
    ----------
    problem : PoissonProblem
        Forward discretisation.
    loads : ndarray of shape (n_dofs, n_sources)
    observations : ndarray of shape (n_dofs, n_sources)
        Noisy data.
    cell_of_element : ndarray of shape (n_elements,)
        Flat coarse-cell index of each element.
    cells : int
    theta_true : ndarray of shape (cells, cells) or None
    """

    problem: PoissonProblem
    loads: NDArray[np.float64]
    observations: NDArray[np.float64]
    cell_of_element: NDArray[np.int64]
    cells: int
    theta_true: NDArray[np.float64] | None = None

    def kappa_elements(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """Per-element κ for coarse log-κ ``theta`` (flat or (cells, cells))."""
        return np.exp(np.asarray(theta, dtype=np.float64).ravel()[self.cell_of_element])


@dataclass(frozen=True, eq=False)
class InverseResult:
    """Outcome of :func:`solve_inverse`.

    Attributes
    ----------
    theta : ndarray of shape (cells, cells)
        Recovered log-κ.
    kappa : ndarray of shape (cells, cells)
        ``exp(theta)``.
    objective : float
    n_iterations : int
    success : bool
    message : str
    relative_error : float or None
        ``‖κ − κ_true‖₂ / ‖κ_true‖₂`` on the coarse cells when the truth is known.
    history : list of float
        Objective after each iteration.
    """

    theta: NDArray[np.float64]
    kappa: NDArray[np.float64]
    objective: float
    n_iterations: int
    success: bool
    message: str
    relative_error: float | None
    history: list[float] = field(default_factory=list)


def _synthetic_data(
    problem: PoissonProblem,
    loads: NDArray[np.float64],
    theta: NDArray[np.float64],
    cell_of: NDArray[np.int64],
    cells: int,
    n: int,
    data_n: int,
    sources: Sequence[Callable[..., Any]],
    method: str,
) -> NDArray[np.float64]:
    """Noise-free data at the inversion mesh's nodes, solved on ``unit_square(data_n)``."""
    if data_n == n:
        k, system = problem.prepare(np.exp(theta.ravel()[cell_of]))
        return problem.solve_prepared(k, system, loads)
    fine = PoissonProblem(unit_square(data_n), method=method)
    assert fine.geometry is not None
    ij = np.minimum((fine.geometry.centroids * cells).astype(np.int64), cells - 1)
    k, system = fine.prepare(np.exp(theta.ravel()[ij[:, 0] * cells + ij[:, 1]]))
    u_fine = fine.solve_prepared(k, system, np.stack([fine.load(f) for f in sources], axis=1))
    # structured meshes: coarse node (i/n, j/n) is fine node (i r/data_n, j r/data_n)
    lookup = {tuple(v): row for row, v in enumerate(np.rint(fine.mesh.p.T * data_n).astype(np.int64))}
    coarse = np.rint(problem.mesh.p.T * data_n).astype(np.int64)
    rows = np.fromiter((lookup[tuple(v)] for v in coarse), dtype=np.int64, count=coarse.shape[0])
    return np.asarray(u_fine[rows])


def make_inverse_problem(
    n: int = 64,
    *,
    cells: int = 8,
    noise: float = 0.01,
    seed: int = 0,
    theta_true: NDArray[np.float64] | None = None,
    sources: Sequence[Callable[..., Any]] = DEFAULT_SOURCES,
    method: str = "auto",
    data_refinement: int = 1,
) -> InverseProblem:
    """Build a synthetic inverse problem on ``unit_square(n)`` with noisy data.

    Parameters
    ----------
    n : int, default=64
        Mesh cells per side (must be a multiple of ``cells``).
    cells : int, default=8
        Coarse cells per side for θ.
    noise : float, default=0.01
        Noise standard deviation relative to ``max|u_s|`` per source.
    seed : int, default=0
        Noise seed (``default_rng(seed)``).
    theta_true : ndarray of shape (cells, cells), optional
        True log-κ (default :func:`default_log_kappa`).
    sources : sequence of callables, default=DEFAULT_SOURCES
    method : {"auto", "direct", "amg"}, default="auto"
    data_refinement : int, default=1
        Solve for the synthetic data on a mesh this many times finer and sample it at
        the inversion mesh's nodes (> 1 avoids the "inverse crime" of generating data
        with the very discretisation used to invert it).

    Returns
    -------
    InverseProblem

    Raises
    ------
    InvalidParameterError
        If ``n`` is not a multiple of ``cells``, or for bad sizes/noise.
    """
    check_number(cells, "cells", "make_inverse_problem", minimum=2, integer=True)
    check_number(n, "n", "make_inverse_problem", minimum=cells, integer=True)
    check_number(noise, "noise", "make_inverse_problem", minimum=0)
    check_number(data_refinement, "data_refinement", "make_inverse_problem", minimum=1, integer=True)
    if n % cells:
        raise InvalidParameterError(
            f"The 'n' parameter of make_inverse_problem must be a multiple of cells={cells} so coarse cells "
            f"align with the mesh. Got n={n} instead."
        )
    if not sources:
        raise InvalidParameterError("make_inverse_problem needs at least one source.")
    theta = default_log_kappa(cells) if theta_true is None else np.asarray(theta_true, dtype=np.float64)
    if theta.shape != (cells, cells) or not np.all(np.isfinite(theta)):
        raise InvalidParameterError(
            f"The 'theta_true' parameter of make_inverse_problem must be finite with shape ({cells}, {cells}). "
            f"Got shape {theta.shape} instead."
        )
    problem = PoissonProblem(unit_square(n), method=method)
    assert problem.geometry is not None  # degree 1
    cen = problem.geometry.centroids
    ij = np.minimum((cen * cells).astype(np.int64), cells - 1)
    cell_of = ij[:, 0] * cells + ij[:, 1]
    loads = np.stack([problem.load(f) for f in sources], axis=1)
    clean = _synthetic_data(problem, loads, theta, cell_of, cells, n, n * data_refinement, sources, method)
    rng = np.random.default_rng(seed)
    scale = noise * np.max(np.abs(clean), axis=0)
    data = clean + rng.standard_normal(clean.shape) * scale[None, :]
    return InverseProblem(problem, loads, data, cell_of, cells, theta)


def solve_inverse(
    inv: InverseProblem,
    *,
    alpha: float = 1e-4,
    theta0: NDArray[np.float64] | None = None,
    maxiter: int = 300,
    tol: float = 1e-10,
) -> InverseResult:
    """Recover coarse log-κ by L-BFGS-B on misfit + Laplacian Tikhonov.

    Parameters
    ----------
    inv : InverseProblem
        From :func:`make_inverse_problem` (or built by hand).
    alpha : float, default=1e-4
        Regularisation weight on ``½ θᵀLθ`` (relative misfits are O(noise²) per node).
    theta0 : ndarray, optional
        Start (default zeros, κ = 1).
    maxiter : int, default=300
        L-BFGS-B iteration cap.
    tol : float, default=1e-10
        ``ftol`` and ``gtol`` for L-BFGS-B.

    Returns
    -------
    InverseResult
    """
    from scipy.optimize import minimize

    check_number(alpha, "alpha", "solve_inverse", minimum=0)
    check_number(maxiter, "maxiter", "solve_inverse", minimum=1, integer=True)
    c = inv.cells
    lap = _coarse_laplacian(c)
    norms = np.sum(inv.observations[inv.problem.free_dofs] ** 2, axis=0)
    weights = 1.0 / np.maximum(norms, 1e-300)
    n_cells = c * c
    history: list[float] = []
    last = [float("nan")]

    def fun(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        kappa_e = inv.kappa_elements(theta)
        mg = misfit_gradient(inv.problem, kappa_e, inv.loads, inv.observations, weights=weights)
        g = np.bincount(inv.cell_of_element, weights=mg.gradient * kappa_e, minlength=n_cells)
        reg = lap @ theta
        last[0] = mg.value + 0.5 * alpha * float(theta @ reg)
        return last[0], g + alpha * reg

    x0 = np.zeros(n_cells) if theta0 is None else np.asarray(theta0, dtype=np.float64).ravel()
    if x0.shape != (n_cells,):
        raise InvalidParameterError(
            f"The 'theta0' parameter of solve_inverse must have {n_cells} values. Got shape {x0.shape} instead."
        )
    res = minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        callback=lambda xk: history.append(last[0]),  # value at the accepted iterate
        options={"maxiter": maxiter, "ftol": tol, "gtol": tol},
    )
    theta = np.asarray(res.x).reshape(c, c)
    kappa = np.exp(theta)
    err = None
    if inv.theta_true is not None:
        kt = np.exp(inv.theta_true)
        err = float(np.linalg.norm(kappa - kt) / np.linalg.norm(kt))
    return InverseResult(
        theta=theta,
        kappa=kappa,
        objective=float(res.fun),
        n_iterations=int(res.nit),
        success=bool(res.success),
        message=str(res.message),
        relative_error=err,
        history=history,
    )
