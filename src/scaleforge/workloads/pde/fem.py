"""P1 / P2 finite elements for ``-∇·(κ∇u) = f`` on 2D triangle meshes.

* **P1** uses our vectorised assembly (:mod:`scaleforge.workloads.pde.mesh`):
  element data precomputed once per mesh, ``K(κ) = Σ_e κ_e K_e`` as one sparse
  matrix-vector product on a fixed sparsity pattern. At 10⁶ elements this is
  27–75× faster than scikit-fem's ``asm`` with a precomputed basis (medians on a
  loaded 2-core machine, ``benchmarks/bench_pde.py``; the one-off element data
  costs ~2–5 s vs ~1 s for scikit-fem's ``Basis``), so P1 does not use ``asm``.
* **P2** uses scikit-fem (``ElementTriP2``, ``asm``) — it is cheap to get right there.
* Load vectors for a source given as a function, Neumann fluxes and error norms
  use scikit-fem quadrature (accuracy matters there, not speed).

Boundary conditions: Dirichlet values ``g`` on the facets selected by
``dirichlet`` (``"all"``, or a predicate of the facet midpoint ``(x, y)``),
a Neumann flux ``κ ∂u/∂n = neumann`` on the remaining boundary. With no
Dirichlet facet the problem is singular (u is defined up to a constant) and is
reported as :class:`~scaleforge.workloads.pde.solvers.SingularSystemError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scaleforge._validation import check_choice
from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.pde.mesh import P1Geometry, check_mesh, p1_geometry
from scaleforge.workloads.pde.solvers import PreparedSystem, SingularSystemError, prepare_system

if TYPE_CHECKING:
    from skfem import MeshTri

__all__ = ["FEMSolution", "PoissonProblem", "solve_poisson"]

Field = Union[float, NDArray[np.float64], Callable[..., Any]]  # noqa: UP007 - runtime alias on py3.10


@dataclass(frozen=True, eq=False)
class FEMSolution:
    """A finite-element solution and what produced it.

    Attributes
    ----------
    problem : PoissonProblem
        The discretisation (mesh, degree, boundary conditions).
    u : ndarray of shape (n_dofs,)
        DOF values (P1: nodal values in mesh node order).
    kappa : ndarray of shape (n_elements,)
        Per-element coefficient used.
    system : PreparedSystem
        Factorisation / AMG hierarchy of the free-DOF block, reusable (adjoint solves).
    """

    problem: PoissonProblem
    u: NDArray[np.float64]
    kappa: NDArray[np.float64]
    system: PreparedSystem

    def errors(self, exact: Callable[..., Any], exact_grad: Callable[..., Any]) -> tuple[float, float]:
        """L2 error and H1-seminorm error against an exact solution.

        Parameters
        ----------
        exact : callable
            ``exact(x, y)`` vectorised.
        exact_grad : callable
            ``exact_grad(x, y) -> (du/dx, du/dy)``.

        Returns
        -------
        l2, h1 : float
        """
        from skfem import Functional

        basis = self.problem.basis

        @Functional  # type: ignore[untyped-decorator]  # skfem is untyped
        def l2(w: Any) -> Any:
            return (w["uh"] - exact(w.x[0], w.x[1])) ** 2

        @Functional  # type: ignore[untyped-decorator]  # skfem is untyped
        def h1(w: Any) -> Any:
            gx, gy = exact_grad(w.x[0], w.x[1])
            return (w["uh"].grad[0] - gx) ** 2 + (w["uh"].grad[1] - gy) ** 2

        uh = basis.interpolate(self.u)
        return float(np.sqrt(l2.assemble(basis, uh=uh))), float(np.sqrt(h1.assemble(basis, uh=uh)))


class PoissonProblem:
    """Discretisation of ``-∇·(κ∇u) = f`` on one mesh with fixed boundary conditions.

    Parameters
    ----------
    mesh : skfem.MeshTri
        Non-empty triangle mesh (e.g. :func:`~scaleforge.workloads.pde.mesh.unit_square`).
    degree : {1, 2}, default=1
        Polynomial degree.
    dirichlet : "all", callable or None, default="all"
        Dirichlet facets: all boundary facets, those whose midpoint satisfies
        ``dirichlet(x, y)`` (vectorised, returns bool), or none (then the system is singular).
    g : float or callable, default=0.0
        Dirichlet value ``g(x, y)``.
    neumann : float or callable, default=0.0
        Flux ``κ ∂u/∂n`` on the non-Dirichlet boundary.
    method : {"auto", "direct", "amg"}, default="auto"
        Linear solver, see :func:`~scaleforge.workloads.pde.solvers.select_solver`.

    Raises
    ------
    InvalidParameterError
        For an empty mesh, a bad degree or method, or ``dirichlet=None``/an empty
        Dirichlet set (:class:`SingularSystemError`: the pure Neumann problem is singular).
    """

    def __init__(
        self,
        mesh: MeshTri,
        *,
        degree: int = 1,
        dirichlet: str | Callable[..., Any] | None = "all",
        g: float | Callable[..., Any] = 0.0,
        neumann: float | Callable[..., Any] = 0.0,
        method: str = "auto",
    ) -> None:
        self.mesh = check_mesh(mesh, "PoissonProblem")
        self.degree = check_choice(degree, "degree", "PoissonProblem", (1, 2))
        self.method = check_choice(method, "method", "PoissonProblem", ("auto", "direct", "amg"))
        self.g = g
        self.neumann = neumann
        bfacets = np.asarray(mesh.boundary_facets())
        if dirichlet is None:
            dfacets = bfacets[:0]
        elif isinstance(dirichlet, str):
            check_choice(dirichlet, "dirichlet", "PoissonProblem", ("all",))
            dfacets = bfacets
        elif callable(dirichlet):
            mid = mesh.p[:, mesh.facets[:, bfacets]].mean(axis=1)
            dfacets = bfacets[np.asarray(dirichlet(mid[0], mid[1]), dtype=bool)]
        else:
            raise InvalidParameterError(
                "The 'dirichlet' parameter of PoissonProblem must be 'all', a predicate f(x, y) -> bool "
                f"array, or None. Got {type(dirichlet).__name__} instead."
            )
        if dfacets.size == 0:
            raise SingularSystemError(
                "PoissonProblem has no Dirichlet boundary, so -div(kappa grad u) = f is singular (u is only "
                "defined up to a constant, and a solution exists only if the data are compatible). "
                "Pass dirichlet='all' or a predicate that selects part of the boundary."
            )
        self.dirichlet_facets = dfacets
        self.neumann_facets = np.setdiff1d(bfacets, dfacets)
        if degree == 1:
            self.geometry: P1Geometry | None = p1_geometry(mesh)
            dofs = np.unique(mesh.facets[:, dfacets])
            self.n_dofs = self.geometry.n_nodes
        else:
            self.geometry = None
            dofs = np.asarray(self.basis.get_dofs(dfacets).flatten())
            self.n_dofs = int(self.basis.N)
        self.dirichlet_dofs = np.asarray(dofs, dtype=np.int64)
        mask = np.ones(self.n_dofs, dtype=bool)
        mask[self.dirichlet_dofs] = False
        self.free_dofs = np.flatnonzero(mask)

    @property
    def n_elements(self) -> int:
        """Number of triangles."""
        return int(self.mesh.t.shape[1])

    @cached_property
    def basis(self) -> Any:
        """The scikit-fem ``Basis`` of this discretisation (built on first use)."""
        from skfem import Basis, ElementTriP1, ElementTriP2

        return Basis(self.mesh, ElementTriP1() if self.degree == 1 else ElementTriP2())

    @cached_property
    def dof_locations(self) -> NDArray[np.float64]:
        """Coordinates of the DOFs, shape (n_dofs, 2)."""
        if self.degree == 1:
            return np.asarray(self.mesh.p.T)
        return np.asarray(self.basis.doflocs.T)

    def element_kappa(self, kappa: Field) -> NDArray[np.float64]:
        """Per-element κ from a scalar, an array of shape (n_elements,) or a function ``κ(x, y)``.

        A function is averaged over each triangle with the 3-point edge-midpoint rule.

        Parameters
        ----------
        kappa : float, ndarray or callable

        Returns
        -------
        ndarray of shape (n_elements,)

        Raises
        ------
        InvalidParameterError
            If κ has the wrong shape or is not finite and > 0.
        """
        m = self.n_elements
        if callable(kappa):
            p, t = self.mesh.p, self.mesh.t
            mids = [(p[:, t[i]] + p[:, t[(i + 1) % 3]]) / 2 for i in range(3)]
            values = np.mean(
                [np.broadcast_to(np.asarray(kappa(q[0], q[1]), float), (m,)) for q in mids], axis=0
            )
        else:
            arr = np.asarray(kappa, dtype=np.float64)
            if arr.ndim == 0:
                values = np.full(m, float(arr))
            elif arr.shape == (m,):
                values = arr
            else:
                raise InvalidParameterError(
                    f"The 'kappa' parameter must be a scalar, a function kappa(x, y) or an array of shape "
                    f"({m},) (one value per element). Got shape {arr.shape} instead."
                )
        if not np.all(np.isfinite(values)) or not np.all(values > 0):
            bad = int(np.sum(~(np.isfinite(values) & (values > 0))))
            raise InvalidParameterError(
                f"The 'kappa' parameter must be finite and > 0 on every element; {bad} of {m} values are not "
                f"(min {np.nanmin(values)!r}). Use kappa = exp(log_kappa) for an unconstrained parameter."
            )
        return np.ascontiguousarray(values, dtype=np.float64)

    def stiffness(self, kappa_e: NDArray[np.float64]) -> sp.csr_matrix:
        """Global stiffness matrix ``K(κ)`` for a validated per-element κ (all DOFs, no BCs).

        Parameters
        ----------
        kappa_e : ndarray of shape (n_elements,)

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_dofs, n_dofs)
        """
        if self.geometry is not None:
            return self.geometry.stiffness(kappa_e)
        from skfem import BilinearForm, asm
        from skfem.helpers import dot, grad

        @BilinearForm  # type: ignore[untyped-decorator]  # skfem is untyped
        def form(u: Any, v: Any, w: Any) -> Any:
            return w.kappa * dot(grad(u), grad(v))

        return sp.csr_matrix(asm(form, self.basis, kappa=kappa_e[:, None]))

    def load(self, f: Field) -> NDArray[np.float64]:
        """Load vector ``∫ f v`` plus the Neumann term ``∫_ΓN g_N v``.

        Parameters
        ----------
        f : float, callable ``f(x, y)`` or ndarray of shape (n_dofs,)
            Source; an array is interpolated (DOF values).

        Returns
        -------
        ndarray of shape (n_dofs,)
        """
        from skfem import LinearForm, asm

        if callable(f):

            @LinearForm  # type: ignore[untyped-decorator]  # skfem is untyped
            def lf(v: Any, w: Any) -> Any:
                return f(w.x[0], w.x[1]) * v

            b = np.asarray(asm(lf, self.basis), dtype=np.float64)
        else:
            arr = np.asarray(f, dtype=np.float64)
            if arr.ndim == 0 and self.geometry is not None:
                b = np.zeros(self.n_dofs)
                np.add.at(b, self.geometry.cells, (float(arr) * self.geometry.areas / 3.0)[:, None])
            elif arr.ndim == 0 or arr.shape == (self.n_dofs,):
                from skfem import BilinearForm

                @BilinearForm  # type: ignore[untyped-decorator]  # skfem is untyped
                def mass(u: Any, v: Any, w: Any) -> Any:
                    return u * v

                vals = np.full(self.n_dofs, float(arr)) if arr.ndim == 0 else arr
                b = np.asarray(asm(mass, self.basis) @ vals)
            else:
                raise InvalidParameterError(
                    f"The 'f' parameter must be a scalar, a function f(x, y) or an array of shape "
                    f"({self.n_dofs},). Got shape {arr.shape} instead."
                )
        if not np.all(np.isfinite(b)):
            raise InvalidParameterError("The source 'f' produced non-finite load values; check f.")
        if self.neumann_facets.size and (callable(self.neumann) or float(self.neumann) != 0.0):
            from skfem import FacetBasis

            fb = FacetBasis(self.mesh, self.basis.elem, facets=self.neumann_facets)
            gn = self.neumann

            @LinearForm  # type: ignore[untyped-decorator]  # skfem is untyped
            def nf(v: Any, w: Any) -> Any:
                value = gn(w.x[0], w.x[1]) if callable(gn) else float(gn) + 0 * w.x[0]
                return value * v

            b = b + np.asarray(asm(nf, fb))
        return b

    def dirichlet_values(self) -> NDArray[np.float64]:
        """``g`` at the Dirichlet DOFs, shape (n_dirichlet,)."""
        if callable(self.g):
            loc = self.dof_locations[self.dirichlet_dofs]
            return np.broadcast_to(np.asarray(self.g(loc[:, 0], loc[:, 1]), float), (loc.shape[0],)).copy()
        return np.full(self.dirichlet_dofs.size, float(self.g))

    def prepare(self, kappa_e: NDArray[np.float64]) -> tuple[sp.csr_matrix, PreparedSystem]:
        """Assemble ``K(κ)`` and factorise its free-DOF block (reused by content).

        Parameters
        ----------
        kappa_e : ndarray of shape (n_elements,)

        Returns
        -------
        k : csr_matrix
            Full stiffness matrix.
        system : PreparedSystem
            Factorised free block.
        """
        k = self.stiffness(kappa_e)
        free = self.free_dofs
        return k, prepare_system(k[free][:, free], self.method)

    def solve(self, kappa: Field = 1.0, f: Field = 1.0) -> FEMSolution:
        """Solve for one κ and one source.

        Parameters
        ----------
        kappa : float, ndarray of shape (n_elements,) or callable, default=1.0
        f : float, callable or ndarray of shape (n_dofs,), default=1.0

        Returns
        -------
        FEMSolution
        """
        kappa_e = self.element_kappa(kappa)
        k, system = self.prepare(kappa_e)
        u = self.solve_prepared(k, system, self.load(f))
        return FEMSolution(problem=self, u=u, kappa=kappa_e, system=system)

    def solve_prepared(
        self, k: sp.csr_matrix, system: PreparedSystem, b: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Solve with an already prepared system for load vector(s) ``b``.

        Parameters
        ----------
        k : csr_matrix
            Full stiffness matrix from :meth:`prepare`.
        system : PreparedSystem
            Its factorised free block.
        b : ndarray of shape (n_dofs,) or (n_dofs, n_rhs)

        Returns
        -------
        ndarray, same shape as ``b``
            Solution(s) including the Dirichlet values.
        """
        free, dof_d = self.free_dofs, self.dirichlet_dofs
        ud = self.dirichlet_values()
        u = np.zeros(b.shape)
        if b.ndim == 1:
            u[dof_d] = ud
            rhs = b[free] - k[free][:, dof_d] @ ud
        else:
            u[dof_d] = ud[:, None]
            rhs = b[free] - (k[free][:, dof_d] @ ud)[:, None]
        u[free] = system.solve(rhs)
        return u


def solve_poisson(
    mesh: MeshTri,
    kappa: Field = 1.0,
    f: Field = 1.0,
    *,
    degree: int = 1,
    dirichlet: str | Callable[..., Any] | None = "all",
    g: float | Callable[..., Any] = 0.0,
    neumann: float | Callable[..., Any] = 0.0,
    method: str = "auto",
) -> FEMSolution:
    """Solve ``-∇·(κ∇u) = f`` with P1 or P2 elements.

    Parameters
    ----------
    mesh : skfem.MeshTri
        Triangle mesh.
    kappa : float, ndarray of shape (n_elements,) or callable, default=1.0
        Positive coefficient, per element or as ``κ(x, y)``.
    f : float, callable or ndarray, default=1.0
        Source.
    degree, dirichlet, g, neumann, method
        See :class:`PoissonProblem`.

    Returns
    -------
    FEMSolution

    Raises
    ------
    InvalidParameterError
        For bad input; :class:`SingularSystemError` without a Dirichlet boundary.

    Examples
    --------
    >>> from scaleforge.workloads.pde.mesh import unit_square
    >>> sol = solve_poisson(unit_square(8), kappa=1.0, f=1.0)
    >>> round(float(sol.u.max()), 3)
    0.073
    """
    problem = PoissonProblem(mesh, degree=degree, dirichlet=dirichlet, g=g, neumann=neumann, method=method)
    return problem.solve(kappa, f)
