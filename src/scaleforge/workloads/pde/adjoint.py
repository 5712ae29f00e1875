"""Adjoint gradient of a least-squares misfit with respect to the per-element coefficient κ.

For ``K(κ) u_s = b_s`` (one state per source ``s``) and the misfit

    J(κ) = ½ Σ_s w_s ‖u_s[obs] − d_s[obs]‖²,

the adjoint states solve ``K λ_s = w_s P_obsᵀ (u_s − d_s)`` on the free DOFs and

    ∂J/∂κ_e = − Σ_s λ_{s,e}ᵀ K_e u_{s,e},

an element-wise contraction with the precomputed local matrices ``K_e``
(``K(κ) = Σ κ_e K_e``). Because K is symmetric the adjoint solve reuses the
forward factorisation: one extra (multi-right-hand-side) solve, no new
factorisation. P1 only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.pde.fem import Field, PoissonProblem

__all__ = ["MisfitGradient", "misfit_gradient"]


@dataclass(frozen=True, eq=False)
class MisfitGradient:
    """Value and gradient of the misfit.

    Attributes
    ----------
    value : float
        J(κ).
    gradient : ndarray of shape (n_elements,)
        ∂J/∂κ_e.
    states : ndarray of shape (n_dofs, n_sources)
        Forward solutions.
    adjoints : ndarray of shape (n_dofs, n_sources)
        Adjoint solutions (zero on Dirichlet DOFs).
    """

    value: float
    gradient: NDArray[np.float64]
    states: NDArray[np.float64]
    adjoints: NDArray[np.float64]


def misfit_gradient(
    problem: PoissonProblem,
    kappa: Field,
    loads: NDArray[np.float64],
    observations: NDArray[np.float64],
    *,
    observed: NDArray[np.int64] | None = None,
    weights: Sequence[float] | NDArray[np.float64] | None = None,
) -> MisfitGradient:
    """Misfit ``J`` and its exact gradient with respect to per-element κ (adjoint method).

    Parameters
    ----------
    problem : PoissonProblem
        A degree-1 discretisation.
    kappa : float, ndarray of shape (n_elements,) or callable
        Coefficient.
    loads : ndarray of shape (n_dofs, n_sources)
        Load vectors, e.g. ``np.stack([problem.load(f) for f in sources], axis=1)``.
    observations : ndarray of shape (n_dofs, n_sources)
        Data ``d_s`` (only rows in ``observed`` are used).
    observed : ndarray of int, optional
        Observed DOFs; default all free DOFs.
    weights : sequence of float, optional
        Per-source weights ``w_s`` (default 1).

    Returns
    -------
    MisfitGradient

    Raises
    ------
    InvalidParameterError
        For a P2 problem or arrays of the wrong shape.
    """
    if problem.degree != 1 or problem.geometry is None:
        raise InvalidParameterError(
            "misfit_gradient supports degree=1 problems only. Build PoissonProblem(mesh, degree=1)."
        )
    loads = np.asarray(loads, dtype=np.float64)
    if loads.ndim == 1:
        loads = loads[:, None]
    obs = np.asarray(observations, dtype=np.float64)
    if obs.ndim == 1:
        obs = obs[:, None]
    if loads.shape[0] != problem.n_dofs or obs.shape != loads.shape:
        raise InvalidParameterError(
            f"misfit_gradient needs 'loads' and 'observations' of the same shape (n_dofs={problem.n_dofs}, "
            f"n_sources). Got {loads.shape} and {obs.shape} instead."
        )
    if not np.all(np.isfinite(obs)):
        raise InvalidParameterError("The 'observations' parameter of misfit_gradient must be finite.")
    n_src = loads.shape[1]
    w = np.ones(n_src) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n_src,):
        raise InvalidParameterError(
            f"The 'weights' parameter of misfit_gradient must have one value per source ({n_src}). "
            f"Got shape {w.shape} instead."
        )
    obs_idx = problem.free_dofs if observed is None else np.asarray(observed, dtype=np.int64)
    kappa_e = problem.element_kappa(kappa)
    k, system = problem.prepare(kappa_e)
    u = problem.solve_prepared(k, system, loads)
    resid = np.zeros_like(u)
    resid[obs_idx] = (u[obs_idx] - obs[obs_idx]) * w[None, :]
    value = 0.5 * float(np.sum(w[None, :] * (u[obs_idx] - obs[obs_idx]) ** 2))
    lam = np.zeros_like(u)
    free = problem.free_dofs
    lam[free] = system.solve(resid[free])  # same factorisation: K is symmetric
    geom = problem.geometry
    cells = geom.cells
    # dJ/dkappa_e = - sum_s lam_e^T K_e u_e
    ue = u[cells]  # (M, 3, S)
    le = lam[cells]
    grad = -np.einsum("eis,eij,ejs->e", le, geom.local_stiffness, ue, optimize=True)
    return MisfitGradient(value=value, gradient=grad, states=u, adjoints=lam)
