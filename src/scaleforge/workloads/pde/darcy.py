"""Cell-centred finite-volume solver for 2D Darcy flow ``-∇·(κ∇u) = f`` on the unit square.

The recipe of WORKLOADS-REFERENCE.md (the FNO Darcy data): ``s × s`` unknowns at
the points ``((i+1)h, (j+1)h)`` with ``h = 1/(s+1)``, zero Dirichlet values on
the boundary, a 5-point stencil whose face coefficients are harmonic means of
the two neighbouring values of κ (the boundary faces use the cell's own κ), and
a sparse direct solve. The scheme is second-order accurate for smooth κ and is
checked against the finite-element solver in :mod:`scaleforge.workloads.pde.verify`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray

from scaleforge.errors import InvalidParameterError

__all__ = ["darcy_fv_grid", "darcy_fv_matrix", "solve_darcy_fv"]


def _check_kappa(kappa: object, owner: str) -> NDArray[np.float64]:
    arr = np.asarray(kappa, dtype=np.float64) if not isinstance(kappa, np.ndarray) else kappa
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InvalidParameterError(
            f"The 'kappa' parameter of {owner} must be a square 2D array of shape (s, s). "
            f"Got shape {np.shape(np.asarray(kappa))} instead."
        )
    if arr.shape[0] < 4:
        raise InvalidParameterError(
            f"The 'kappa' parameter of {owner} must have resolution s >= 4. Got s={arr.shape[0]} instead."
        )
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise InvalidParameterError(
            f"The 'kappa' parameter of {owner} must be finite and > 0 everywhere "
            f"(min {np.nanmin(arr)!r}, {int(np.sum(~np.isfinite(arr)))} non-finite). "
            "Clip or exponentiate it (kappa = exp(log_kappa))."
        )
    return arr


def darcy_fv_grid(s: int) -> NDArray[np.float64]:
    """Coordinates of the ``s × s`` finite-volume unknowns.

    Parameters
    ----------
    s : int
        Unknowns per side.

    Returns
    -------
    ndarray of shape (s, s, 2)
        ``grid[i, j] = (x_i, y_j) = ((i+1)h, (j+1)h)`` with ``h = 1/(s+1)``
        ("ij" indexing: axis 0 is x, axis 1 is y).
    """
    x = np.arange(1, s + 1, dtype=np.float64) / (s + 1)
    xx, yy = np.meshgrid(x, x, indexing="ij")
    return np.ascontiguousarray(np.stack([xx, yy], axis=-1))


def darcy_fv_matrix(kappa: NDArray[np.float64]) -> sp.csr_matrix:
    """Assemble the 5-point finite-volume matrix for ``-∇·(κ∇u)`` with zero Dirichlet values.

    Parameters
    ----------
    kappa : ndarray of shape (s, s)
        Positive permeability at the unknowns ("ij" indexing).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (s*s, s*s)
        Symmetric positive definite; unknown ``(i, j)`` has index ``i*s + j``.

    Raises
    ------
    InvalidParameterError
        If κ is not a finite, positive, square array with s >= 4.
    """
    k = _check_kappa(kappa, "darcy_fv_matrix")
    s = k.shape[0]
    h2 = (1.0 / (s + 1)) ** 2
    idx = np.arange(s * s).reshape(s, s)
    # harmonic means on interior faces (x faces between i and i+1, y faces between j and j+1)
    kx = 2.0 * k[:-1, :] * k[1:, :] / (k[:-1, :] + k[1:, :])
    ky = 2.0 * k[:, :-1] * k[:, 1:] / (k[:, :-1] + k[:, 1:])
    diag = np.zeros((s, s))
    diag[:-1, :] += kx
    diag[1:, :] += kx
    diag[:, :-1] += ky
    diag[:, 1:] += ky
    # boundary faces: Dirichlet value 0 at distance h, coefficient = the cell's own kappa
    diag[0, :] += k[0, :]
    diag[-1, :] += k[-1, :]
    diag[:, 0] += k[:, 0]
    diag[:, -1] += k[:, -1]
    rows = np.concatenate(
        [idx.ravel(), idx[:-1, :].ravel(), idx[1:, :].ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel()]
    )
    cols = np.concatenate(
        [idx.ravel(), idx[1:, :].ravel(), idx[:-1, :].ravel(), idx[:, 1:].ravel(), idx[:, :-1].ravel()]
    )
    vals = np.concatenate([diag.ravel(), -kx.ravel(), -kx.ravel(), -ky.ravel(), -ky.ravel()]) / h2
    return sp.csr_matrix((vals, (rows, cols)), shape=(s * s, s * s))


def solve_darcy_fv(kappa: NDArray[np.float64], f: float | NDArray[np.float64] = 1.0) -> NDArray[np.float64]:
    """Solve ``-∇·(κ∇u) = f`` on the unit square with ``u = 0`` on the boundary.

    Parameters
    ----------
    kappa : ndarray of shape (s, s)
        Positive permeability at the unknowns, see :func:`darcy_fv_grid`.
    f : float or ndarray of shape (s, s), default=1.0
        Source term at the unknowns.

    Returns
    -------
    ndarray of shape (s, s)
        The solution at the unknowns.

    Raises
    ------
    InvalidParameterError
        For invalid κ or a source of the wrong shape / with non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> u = solve_darcy_fv(np.ones((8, 8)))
    >>> bool(u.max() > 0)
    True
    """
    k = _check_kappa(kappa, "solve_darcy_fv")
    s = k.shape[0]
    rhs = (
        np.broadcast_to(np.asarray(f, dtype=np.float64), (s, s)) if np.ndim(f) == 0 else np.asarray(f, float)
    )
    if rhs.shape != (s, s):
        raise InvalidParameterError(
            f"The 'f' parameter of solve_darcy_fv must be a scalar or an array of shape {(s, s)} like "
            f"kappa. Got shape {rhs.shape} instead."
        )
    if not np.all(np.isfinite(rhs)):
        raise InvalidParameterError("The 'f' parameter of solve_darcy_fv must be finite everywhere.")
    a = darcy_fv_matrix(k).tocsc()
    u = spla.spsolve(a, np.ascontiguousarray(rhs).ravel())
    return np.ascontiguousarray(np.asarray(u, dtype=np.float64).reshape(s, s))
