"""Adaptive mesh refinement for P1 driven by a residual a-posteriori error estimator.

The estimator (Verfürth; scikit-fem's adaptive example ``ex22``) on element K is

    η_K² = h_K² ‖f‖²_{L²(K)} + ½ Σ_{E ⊂ ∂K interior} h_E ‖[κ ∂u_h/∂n]‖²_{L²(E)},

(for P1 and piecewise-constant κ the interior residual ``∇·(κ∇u_h)`` vanishes).
Each step solves, estimates, marks by the maximum strategy
(``skfem.adaptive_theta``) and refines the marked triangles.

The classic check is the L-shaped domain with ``u = r^{2/3} sin(2φ/3)``: uniform
refinement converges in the energy norm like ``N^{-1/3}`` (the corner
singularity), adaptive refinement recovers the optimal ``N^{-1/2}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_number
from scaleforge.workloads.pde.fem import FEMSolution, Field, PoissonProblem
from scaleforge.workloads.pde.mesh import check_mesh

if TYPE_CHECKING:
    from skfem import MeshTri

__all__ = ["AdaptiveResult", "adaptive_solve", "lshape_exact", "residual_estimator"]


def lshape_exact(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """``r^{2/3} sin(2φ/3)`` on scikit-fem's L-shaped mesh (``[-1,1]²`` minus the first quadrant).

    Harmonic, zero on the two edges meeting at the re-entrant corner.

    Parameters
    ----------
    x, y : ndarray

    Returns
    -------
    ndarray
    """
    r = np.hypot(x, y)
    phi = np.mod(np.arctan2(y, x) - np.pi / 2, 2 * np.pi)
    return np.asarray(r ** (2.0 / 3.0) * np.sin(2.0 * phi / 3.0))


def lshape_exact_grad(
    x: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gradient of :func:`lshape_exact`.

    Parameters
    ----------
    x, y : ndarray

    Returns
    -------
    (du/dx, du/dy)
    """
    r = np.maximum(np.hypot(x, y), 1e-300)
    phi = np.mod(np.arctan2(y, x) - np.pi / 2, 2 * np.pi)
    ur = (2.0 / 3.0) * r ** (-1.0 / 3.0) * np.sin(2 * phi / 3)
    uphi = (2.0 / 3.0) * r ** (-1.0 / 3.0) * np.cos(2 * phi / 3)  # (1/r) du/dphi
    theta = np.arctan2(y, x)
    return ur * np.cos(theta) - uphi * np.sin(theta), ur * np.sin(theta) + uphi * np.cos(theta)


def residual_estimator(solution: FEMSolution, f: Field = 1.0) -> NDArray[np.float64]:
    """Element indicators η_K² of the residual estimator for a P1 solution.

    Parameters
    ----------
    solution : FEMSolution
        Degree-1 solution.
    f : float or callable, default=1.0
        The source used.

    Returns
    -------
    ndarray of shape (n_elements,)
        η_K² (sum them for η²).
    """
    from skfem import Functional, InteriorFacetBasis

    problem = solution.problem
    mesh = problem.mesh
    basis = problem.basis
    kap = solution.kappa

    @Functional  # type: ignore[untyped-decorator]  # skfem is untyped
    def interior(w: Any) -> Any:
        val = f(w.x[0], w.x[1]) if callable(f) else float(f) + 0.0 * w.x[0]
        return w.h**2 * val**2

    eta_k = np.asarray(interior.elemental(basis))
    fb = [InteriorFacetBasis(mesh, basis.elem, side=i) for i in (0, 1)]
    k0 = kap[fb[0].tind][:, None]
    k1 = kap[fb[1].tind][:, None]
    w = {"u1": fb[0].interpolate(solution.u), "u2": fb[1].interpolate(solution.u)}

    @Functional  # type: ignore[untyped-decorator]  # skfem is untyped
    def jump(w_: Any) -> Any:
        n = w_.n
        d1, d2 = w_["u1"].grad, w_["u2"].grad
        flux = (k0 * d1[0] - k1 * d2[0]) * n[0] + (k0 * d1[1] - k1 * d2[1]) * n[1]
        return w_.h * flux**2

    eta_e = np.asarray(jump.elemental(fb[0], **w))
    per_facet = np.zeros(mesh.facets.shape[1])
    np.add.at(per_facet, fb[0].find, eta_e)
    return np.asarray(eta_k + np.sum(0.5 * per_facet[mesh.t2f], axis=0), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class AdaptiveResult:
    """Outcome of :func:`adaptive_solve`.

    Attributes
    ----------
    solution : FEMSolution
        Solution on the final mesh.
    history : list of dict
        Per step: ``n_dofs``, ``n_elements``, ``estimator`` (η) and, with an exact
        solution, ``h1_error``/``l2_error``.
    """

    solution: FEMSolution
    history: list[dict[str, float]] = field(default_factory=list)


def adaptive_solve(
    mesh: MeshTri | None = None,
    kappa: float | Callable[..., Any] = 1.0,
    f: float | Callable[..., Any] = 0.0,
    *,
    g: float | Callable[..., Any] = lshape_exact,
    steps: int = 8,
    theta: float = 0.5,
    uniform: bool = False,
    exact: Callable[..., Any] | None = lshape_exact,
    exact_grad: Callable[..., Any] | None = lshape_exact_grad,
) -> AdaptiveResult:
    """Solve, estimate, mark, refine — ``steps`` times (defaults: the L-shaped benchmark).

    Parameters
    ----------
    mesh : skfem.MeshTri, optional
        Initial mesh (default ``MeshTri.init_lshaped().refined(1)``).
    kappa : float or callable, default=1.0
    f : float or callable, default=0.0
    g : float or callable, default=lshape_exact
        Dirichlet data on the whole boundary.
    steps : int, default=8
        Number of solves.
    theta : float, default=0.5
        Maximum-strategy marking fraction (mark η_K >= θ max η).
    uniform : bool, default=False
        Refine every element instead (the comparison run).
    exact, exact_grad : callable or None
        Exact solution for the error columns of the history.

    Returns
    -------
    AdaptiveResult
    """
    from skfem import MeshTri, adaptive_theta

    check_number(steps, "steps", "adaptive_solve", minimum=1, integer=True)
    check_number(theta, "theta", "adaptive_solve", minimum=0, maximum=1, exclusive_minimum=True)
    m = MeshTri.init_lshaped().refined(1) if mesh is None else check_mesh(mesh, "adaptive_solve")
    history: list[dict[str, float]] = []
    sol: FEMSolution | None = None
    for step in range(steps):
        problem = PoissonProblem(m, g=g, method="direct")
        sol = problem.solve(kappa, f)
        eta = residual_estimator(sol, f)
        row = {
            "n_dofs": float(problem.n_dofs),
            "n_elements": float(problem.n_elements),
            "estimator": float(np.sqrt(eta.sum())),
        }
        if exact is not None and exact_grad is not None:
            l2, h1 = sol.errors(exact, exact_grad)
            row.update(l2_error=l2, h1_error=h1)
        history.append(row)
        if step < steps - 1:
            m = m.refined() if uniform else m.refined(adaptive_theta(eta, theta=theta))
    assert sol is not None  # steps >= 1
    return AdaptiveResult(solution=sol, history=history)
