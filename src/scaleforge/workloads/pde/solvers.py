"""Linear solvers for symmetric positive definite FEM systems: sparse LU or AMG-preconditioned CG.

``LinearSolver`` is the extension point (``prepare(A)`` returns a
:class:`PreparedSystem` whose ``solve(b)`` can be called many times):

* :class:`DirectSolver` — SuperLU (``scipy.sparse.linalg.splu``); the
  factorisation is reused for every right-hand side, including the adjoint
  solve. Chosen automatically up to :data:`DIRECT_MAX_UNKNOWNS` unknowns
  (spsolve costs ~1 s at 66k and ~8 s at 263k unknowns, WORKLOADS-REFERENCE.md).
* :class:`AMGSolver` — conjugate gradients preconditioned by a pyamg smoothed
  aggregation V-cycle; the hierarchy is reused the same way.

:func:`prepare_system` picks one (``method="auto" | "direct" | "amg"``) and keeps
prepared systems with ``@cached`` in a memory-only tier keyed by the matrix
content (factorisations cannot be serialised; see ``_memo``), so repeated solves with the same matrix in one process skip the
factorisation. A singular matrix (e.g. pure Neumann without a constraint) is
reported as :class:`~scaleforge.errors.InvalidParameterError`, never as NaNs.
"""

from __future__ import annotations

import abc
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import (
    InvalidParameterError,
    ScaleforgeError,
    SingularSystemError,
)
from scaleforge.workloads.pde._memo import memory_cached

__all__ = [
    "DIRECT_MAX_UNKNOWNS",
    "AMGSolver",
    "DirectSolver",
    "LinearSolver",
    "PreparedSystem",
    "SingularSystemError",
    "prepare_system",
    "prepared_cache",
    "select_solver",
]

logger = logging.getLogger(__name__)

#: Largest system solved with sparse LU under ``method="auto"``.
DIRECT_MAX_UNKNOWNS = 200_000


class PreparedSystem(abc.ABC):
    """A matrix made ready for repeated solves (factorised or with a multigrid hierarchy)."""

    @abc.abstractmethod
    def solve(self, b: NDArray[np.float64]) -> NDArray[np.float64]:
        """Solve ``A x = b``.

        Parameters
        ----------
        b : ndarray of shape (n,) or (n, k)

        Returns
        -------
        ndarray, same shape as ``b``
        """

    @property
    @abc.abstractmethod
    def method(self) -> str:
        """``"direct"`` or ``"amg"``."""

    @property
    def nbytes(self) -> int:
        """Approximate memory held (the memory tier's size estimate); default 0."""
        return 0


class LinearSolver(abc.ABC):
    """Turns a sparse SPD matrix into a :class:`PreparedSystem`."""

    name: str = ""

    @abc.abstractmethod
    def prepare(self, a: sp.spmatrix) -> PreparedSystem:
        """Factorise or set up ``a``.

        Parameters
        ----------
        a : scipy sparse matrix of shape (n, n)

        Returns
        -------
        PreparedSystem

        Raises
        ------
        SingularSystemError
            If ``a`` is singular.
        """


class _LUSystem(PreparedSystem):
    def __init__(self, lu: Any, n: int) -> None:
        self._lu = lu
        self._n = n

    @property
    def method(self) -> str:
        return "direct"

    @property
    def nbytes(self) -> int:
        return int((self._lu.L.nnz + self._lu.U.nnz) * 12 + self._n * 16)

    def solve(self, b: NDArray[np.float64]) -> NDArray[np.float64]:
        x = np.asarray(self._lu.solve(np.asarray(b, dtype=np.float64)))
        if not np.all(np.isfinite(x)):
            raise SingularSystemError(
                "The linear system is singular: the solve produced non-finite values. "
                "Add a Dirichlet boundary (dirichlet='all') or a constraint."
            )
        return x


class DirectSolver(LinearSolver):
    """Sparse LU (SuperLU) with the factorisation reused for every right-hand side."""

    name = "direct"

    def prepare(self, a: sp.spmatrix) -> PreparedSystem:
        from scipy.sparse.linalg import splu

        csc = sp.csc_matrix(a)
        try:
            lu = splu(csc)
        except RuntimeError as exc:  # "Factor is exactly singular"
            raise SingularSystemError(
                f"The system matrix ({csc.shape[0]} unknowns) is singular ({exc}). A pure Neumann problem "
                "needs a Dirichlet boundary or a constraint: pass dirichlet='all' or a boundary predicate."
            ) from exc
        # SuperLU only fails on an exactly zero pivot. A numerically singular matrix (pure Neumann:
        # constants in the kernel, rounding makes the last pivot ~1e-16) factorises, so probe one
        # solve: LU with partial pivoting is backward stable, hence a large residual for a
        # generic right-hand side means the system has no solution, i.e. A is singular. One
        # extra solve is much cheaper than extracting U's diagonal (~25 % of the factorisation).
        probe = np.random.default_rng(0).standard_normal(csc.shape[0])
        with np.errstate(all="ignore"):
            x = lu.solve(probe)
            residual = float(np.linalg.norm(csc @ x - probe) / np.linalg.norm(probe))
        if not np.isfinite(residual) or residual > 1e-6:
            raise SingularSystemError(
                f"The system matrix ({csc.shape[0]} unknowns) is numerically singular (relative residual "
                f"{residual:.1e} for a generic right-hand side). A pure Neumann problem needs a Dirichlet "
                "boundary or a constraint: pass dirichlet='all' or a boundary predicate."
            )
        return _LUSystem(lu, csc.shape[0])


class _AMGSystem(PreparedSystem):
    def __init__(self, a: sp.csr_matrix, ml: Any, rtol: float, maxiter: int) -> None:
        self._a = a
        self._ml = ml
        self._m = ml.aspreconditioner(cycle="V")
        self._rtol = rtol
        self._maxiter = maxiter

    @property
    def method(self) -> str:
        return "amg"

    @property
    def nbytes(self) -> int:
        return int(sum(level.A.nnz * 12 for level in self._ml.levels) * 2 + self._a.nnz * 12)

    def _solve1(self, b: NDArray[np.float64]) -> NDArray[np.float64]:
        from scipy.sparse.linalg import cg

        if not np.any(b):
            return np.zeros_like(b)
        x, info = cg(self._a, b, rtol=self._rtol, atol=0.0, maxiter=self._maxiter, M=self._m)
        if info != 0 or not np.all(np.isfinite(x)):
            raise ScaleforgeError(
                f"AMG-preconditioned CG did not converge (info={info}) in {self._maxiter} iterations. "
                "Check that the system is SPD with a Dirichlet boundary, or use method='direct'."
            )
        return np.asarray(x)

    def solve(self, b: NDArray[np.float64]) -> NDArray[np.float64]:
        b = np.asarray(b, dtype=np.float64)
        if b.ndim == 1:
            return self._solve1(b)
        return np.stack([self._solve1(b[:, j]) for j in range(b.shape[1])], axis=1)


class AMGSolver(LinearSolver):
    """Conjugate gradients preconditioned by pyamg smoothed aggregation.

    Parameters
    ----------
    rtol : float, default=1e-10
        Relative residual tolerance.
    maxiter : int, default=500
        Iteration cap; not converging raises :class:`~scaleforge.errors.ScaleforgeError`.
    """

    name = "amg"

    def __init__(self, *, rtol: float = 1e-10, maxiter: int = 500) -> None:
        check_number(rtol, "rtol", "AMGSolver", minimum=0, exclusive_minimum=True)
        check_number(maxiter, "maxiter", "AMGSolver", minimum=1, integer=True)
        self.rtol = rtol
        self.maxiter = maxiter

    def prepare(self, a: sp.spmatrix) -> PreparedSystem:
        import pyamg

        csr = sp.csr_matrix(a)
        diag = csr.diagonal()
        if np.any(diag <= 0):
            raise SingularSystemError(
                "The system matrix has a non-positive diagonal entry, so it is not SPD; "
                "check the boundary conditions and that kappa > 0."
            )
        ml = pyamg.smoothed_aggregation_solver(csr, symmetry="symmetric")
        return _AMGSystem(csr, ml, self.rtol, self.maxiter)


def select_solver(n_unknowns: int, method: str = "auto") -> LinearSolver:
    """Pick a solver: ``"direct"`` up to :data:`DIRECT_MAX_UNKNOWNS` unknowns, ``"amg"`` above.

    Parameters
    ----------
    n_unknowns : int
        System size.
    method : {"auto", "direct", "amg"}, default="auto"
        Force one solver, or choose by size.

    Returns
    -------
    LinearSolver
    """
    check_choice(method, "method", "select_solver", ("auto", "direct", "amg"))
    if method == "direct" or (method == "auto" and n_unknowns <= DIRECT_MAX_UNKNOWNS):
        return DirectSolver()
    return AMGSolver()


def _prepare(a: sp.csr_matrix, method: str) -> PreparedSystem:
    solver = select_solver(a.shape[0], method)
    logger.debug("preparing %s solver for %d unknowns", solver.name, a.shape[0])
    return solver.prepare(a)


def _prepare_arrays(
    data: NDArray[np.float64], indices: NDArray[np.int32], indptr: NDArray[np.int32], method: str
) -> PreparedSystem:
    n = indptr.size - 1
    return _prepare(sp.csr_matrix((data, indices, indptr), shape=(n, n)), method)


_PREPARED: Any = None


def prepared_cache() -> Any:
    """The ``@cached`` (memory-only tier) preparer, keyed by the matrix's CSR arrays.

    Returns
    -------
    scaleforge.cache.decorators.CachedFunction
        Call ``.cache_info()`` on it for hits and misses.
    """
    global _PREPARED
    if _PREPARED is None:
        _PREPARED = memory_cached(_prepare_arrays, name="pde-factorisations", max_bytes="512MB")
    return _PREPARED


def prepare_system(a: sp.spmatrix, method: str = "auto", *, reuse: bool = True) -> PreparedSystem:
    """Factorise (or set up AMG for) ``a``, reusing an earlier result for the same matrix content.

    Parameters
    ----------
    a : scipy sparse matrix of shape (n, n)
        Symmetric positive definite system matrix.
    method : {"auto", "direct", "amg"}, default="auto"
        See :func:`select_solver`.
    reuse : bool, default=True
        Look the matrix up among the prepared systems cached by content (memory-only tier).

    Returns
    -------
    PreparedSystem

    Raises
    ------
    InvalidParameterError
        For a non-square matrix or an unknown method; :class:`SingularSystemError` if singular.
    """
    check_choice(method, "method", "prepare_system", ("auto", "direct", "amg"))
    if not sp.issparse(a) or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise InvalidParameterError(
            f"The 'a' parameter of prepare_system must be a non-empty square scipy sparse matrix. "
            f"Got {type(a).__name__} of shape {getattr(a, 'shape', None)} instead."
        )
    csr = sp.csr_matrix(a)
    csr.sort_indices()
    if reuse:
        system: PreparedSystem = prepared_cache()(csr.data, csr.indices, csr.indptr, method)
        return system
    return _prepare(csr, method)
