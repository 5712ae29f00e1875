"""Meshes and precomputed P1 element data for the finite-element solver.

Meshes are scikit-fem :class:`skfem.MeshTri` objects (any of them works; the
structured unit square is :func:`unit_square`). :func:`p1_geometry` computes,
once per mesh and vectorised over elements, everything assembly needs:
barycentric gradients, areas, the local stiffness matrices ``K_e`` of the
Laplacian and the CSR sparsity pattern of the global matrix together with a
sparse linear map ``P`` such that ``K(κ).data = P @ κ`` — so assembling
``K(κ) = Σ_e κ_e K_e`` for a new κ is one sparse matrix-vector product that
reuses the pattern. The result is cached with ``@cached`` by the *content* of
the mesh arrays (never by a caller-supplied id) in a memory-only tier, see
:mod:`scaleforge.workloads.pde._memo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.pde._memo import memory_cached

if TYPE_CHECKING:
    from skfem import MeshTri

__all__ = ["P1Geometry", "check_mesh", "p1_geometry", "unit_square"]


def unit_square(n: int) -> MeshTri:
    """Structured triangulation of the unit square with ``n × n`` squares, each cut in two.

    Parameters
    ----------
    n : int
        Cells per side, >= 1 (mesh size ``h = 1/n``; ``(n+1)²`` nodes, ``2n²`` triangles).

    Returns
    -------
    skfem.MeshTri

    Raises
    ------
    InvalidParameterError
        If ``n`` is not an int >= 1.
    """
    from skfem import MeshTri

    check_number(n, "n", "unit_square", minimum=1, integer=True)
    x = np.linspace(0.0, 1.0, n + 1)
    return MeshTri.init_tensor(x, x)


def check_mesh(mesh: object, owner: str) -> Any:
    """Return ``mesh`` if it is a non-empty 2D triangle mesh, else raise.

    Parameters
    ----------
    mesh : object
        Candidate mesh.
    owner : str
        Function name for the message.

    Returns
    -------
    skfem.MeshTri

    Raises
    ------
    InvalidParameterError
        If it is not a scikit-fem MeshTri or has no elements.
    """
    from skfem import MeshTri

    if not isinstance(mesh, MeshTri):
        raise InvalidParameterError(
            f"The 'mesh' parameter of {owner} must be a skfem.MeshTri (e.g. unit_square(32)). "
            f"Got {type(mesh).__name__} instead."
        )
    if mesh.t.shape[1] == 0 or mesh.p.shape[1] < 3:
        raise InvalidParameterError(
            f"The 'mesh' parameter of {owner} is empty ({mesh.p.shape[1]} nodes, {mesh.t.shape[1]} elements). "
            "Pass a mesh with at least one triangle."
        )
    return mesh


@dataclass(frozen=True, eq=False)
class P1Geometry:
    """Element data of one triangle mesh for P1 assembly.

    Attributes
    ----------
    points : ndarray of shape (n_nodes, 2)
    cells : ndarray of shape (n_elements, 3)
    areas : ndarray of shape (n_elements,)
    grads : ndarray of shape (n_elements, 3, 2)
        Gradients of the barycentric coordinates.
    local_stiffness : ndarray of shape (n_elements, 3, 3)
        ``K_e = area_e G_e G_eᵀ`` (Laplacian, κ = 1).
    indptr, indices : ndarray
        CSR pattern of the global matrix.
    scatter : scipy.sparse.csc_matrix of shape (nnz, n_elements)
        ``K(κ).data = scatter @ κ``.
    """

    points: NDArray[np.float64]
    cells: NDArray[np.int64]
    areas: NDArray[np.float64]
    grads: NDArray[np.float64]
    local_stiffness: NDArray[np.float64]
    indptr: NDArray[np.int32]
    indices: NDArray[np.int32]
    scatter: sp.csc_matrix

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (the memory tier's size estimate)."""
        arrays = (
            self.points,
            self.cells,
            self.areas,
            self.grads,
            self.local_stiffness,
            self.indptr,
            self.indices,
        )
        s = self.scatter
        return int(sum(a.nbytes for a in arrays) + s.data.nbytes + s.indices.nbytes + s.indptr.nbytes)

    @property
    def n_nodes(self) -> int:
        """Number of nodes (P1 unknowns before boundary conditions)."""
        return int(self.points.shape[0])

    @property
    def n_elements(self) -> int:
        """Number of triangles."""
        return int(self.cells.shape[0])

    @property
    def centroids(self) -> NDArray[np.float64]:
        """Element centroids, shape (n_elements, 2)."""
        return np.asarray(self.points[self.cells].mean(axis=1))

    def stiffness(self, kappa: NDArray[np.float64]) -> sp.csr_matrix:
        """Assemble ``K(κ) = Σ_e κ_e K_e`` on the precomputed pattern.

        Parameters
        ----------
        kappa : ndarray of shape (n_elements,)
            Validated, positive per-element coefficient.

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_nodes, n_nodes)
        """
        data = self.scatter @ kappa
        n = self.n_nodes
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(n, n))

    def mass(self) -> sp.csr_matrix:
        """Consistent P1 mass matrix, shape (n_nodes, n_nodes)."""
        local = (np.ones((3, 3)) + np.eye(3)) / 12.0
        vals = self.areas[:, None, None] * local[None]
        rows = np.repeat(self.cells, 3, axis=1).ravel()
        cols = np.tile(self.cells, (1, 3)).ravel()
        n = self.n_nodes
        return sp.csr_matrix((vals.ravel(), (rows, cols)), shape=(n, n))


def _p1_geometry_arrays(points: NDArray[np.float64], cells: NDArray[np.int64]) -> P1Geometry:
    x = points[cells]  # (M, 3, 2)
    x0, x1, x2 = x[:, 0], x[:, 1], x[:, 2]
    det = (x1[:, 0] - x0[:, 0]) * (x2[:, 1] - x0[:, 1]) - (x1[:, 1] - x0[:, 1]) * (x2[:, 0] - x0[:, 0])
    if np.any(np.abs(det) <= 1e-300):
        bad = int(np.flatnonzero(np.abs(det) <= 1e-300)[0])
        raise InvalidParameterError(
            f"The mesh has a degenerate (zero-area) triangle, element {bad}. Fix or remove it before assembly."
        )
    grads = np.empty_like(x)
    grads[:, 0, 0] = x1[:, 1] - x2[:, 1]
    grads[:, 0, 1] = x2[:, 0] - x1[:, 0]
    grads[:, 1, 0] = x2[:, 1] - x0[:, 1]
    grads[:, 1, 1] = x0[:, 0] - x2[:, 0]
    grads[:, 2, 0] = x0[:, 1] - x1[:, 1]
    grads[:, 2, 1] = x1[:, 0] - x0[:, 0]
    grads /= det[:, None, None]
    areas = 0.5 * np.abs(det)
    gx, gy = grads[:, :, 0], grads[:, :, 1]
    ke = areas[:, None, None] * (gx[:, :, None] * gx[:, None, :] + gy[:, :, None] * gy[:, None, :])
    n = points.shape[0]
    m = cells.shape[0]
    keys = (np.repeat(cells, 3, axis=1) * n + np.tile(cells, (1, 3))).ravel()
    # CSR pattern = sorted unique (row, col) keys. A stable argsort plus a run-length
    # pass is ~10x faster than np.unique(return_inverse=True) at 10^6 elements
    # (benchmarks/bench_pde.py, setup time).
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    first = np.empty(sorted_keys.size, dtype=bool)
    first[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    uniq = sorted_keys[first]
    inverse = np.empty(keys.size, dtype=np.int32)
    inverse[order] = np.cumsum(first, dtype=np.int32) - 1
    indices = (uniq % n).astype(np.int32)
    indptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(uniq // n, minlength=n), out=indptr[1:])
    # column e of the scatter map holds K_e's 9 entries at their CSR positions; the
    # 9 positions of one element are distinct, so the CSC arrays need no sorting
    scatter = sp.csc_matrix(
        (ke.ravel(), inverse, np.arange(0, 9 * m + 1, 9, dtype=np.int64)),
        shape=(uniq.size, m),
    )
    return P1Geometry(
        points=points,
        cells=cells,
        areas=areas,
        grads=grads,
        local_stiffness=ke,
        indptr=indptr,
        indices=indices,
        scatter=scatter,
    )


_GEOMETRY: Any = None


def _geometry_cache() -> Any:
    """``_p1_geometry_arrays`` behind ``@cached`` on a memory-only tier (see ``_memo``)."""
    global _GEOMETRY
    if _GEOMETRY is None:
        _GEOMETRY = memory_cached(_p1_geometry_arrays, name="pde-geometry", max_bytes="1GB")
    return _GEOMETRY


def p1_geometry(mesh: MeshTri) -> P1Geometry:
    """P1 element data of ``mesh``, computed once per mesh content and cached in memory.

    Parameters
    ----------
    mesh : skfem.MeshTri
        A non-empty triangle mesh.

    Returns
    -------
    P1Geometry

    Raises
    ------
    InvalidParameterError
        For an empty or degenerate mesh.

    Examples
    --------
    >>> g = p1_geometry(unit_square(2))
    >>> g.n_nodes, g.n_elements
    (9, 8)
    """
    check_mesh(mesh, "p1_geometry")
    points = np.ascontiguousarray(mesh.p.T, dtype=np.float64)
    cells = np.ascontiguousarray(mesh.t.T, dtype=np.int64)
    geometry: P1Geometry = _geometry_cache()(points, cells)
    return geometry
