"""Shared reservoir construction and the numpy / torch compute backends.

A reservoir is a fixed random recurrent network: input weights, sparse
recurrent weights rescaled to a target spectral radius, and a bias. Echo
state networks (:mod:`.esn`) and liquid state machines (:mod:`.lsm`) both
build theirs here and run their update loop on a :class:`Backend`, which wraps
either numpy or torch (CUDA when present) behind the handful of operations the
loops need, so both paths execute the same arithmetic.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_choice
from scaleforge.errors import MissingDependencyError

__all__ = [
    "BACKENDS",
    "Backend",
    "NumpyBackend",
    "ReservoirWeights",
    "TorchBackend",
    "get_backend",
    "make_reservoir_weights",
]

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "numpy", "torch")


@dataclass(frozen=True)
class ReservoirWeights:
    """The fixed random weights of one reservoir.

    Attributes
    ----------
    w_in : ndarray of shape (reservoir_size,)
        Input weights (already multiplied by ``input_scaling``).
    w : ndarray of shape (reservoir_size, reservoir_size)
        Recurrent weights, stored dense; a fraction ``sparsity`` of them is zero.
    bias : ndarray of shape (reservoir_size,)
        Constant input of each unit.
    """

    w_in: NDArray[np.float64]
    w: NDArray[np.float64]
    bias: NDArray[np.float64]

    @property
    def size(self) -> int:
        """Number of units."""
        return int(self.w_in.shape[0])


def make_reservoir_weights(
    reservoir_size: int,
    *,
    spectral_radius: float,
    sparsity: float,
    input_scaling: float,
    bias_scaling: float,
    rng: np.random.Generator,
) -> ReservoirWeights:
    """Draw a reservoir: uniform input weights, sparse recurrent weights at a spectral radius.

    Parameters
    ----------
    reservoir_size : int
        Number of units R.
    spectral_radius : float
        Target largest absolute eigenvalue of the recurrent matrix.
    sparsity : float
        Fraction of recurrent weights set to zero, in [0, 1).
    input_scaling : float
        Input weights are drawn from U(-input_scaling, input_scaling).
    bias_scaling : float
        Biases are drawn from U(-bias_scaling, bias_scaling).
    rng : numpy.random.Generator
        Source of randomness; the same state gives the same weights.

    Returns
    -------
    ReservoirWeights
        The weights, float64.

    Notes
    -----
    Every unit keeps at least one incoming recurrent connection so that very
    sparse small reservoirs do not degenerate to a zero matrix. The rescaling
    uses a dense eigendecomposition, cheap for the sizes used here (R <= 2000).
    """
    r = reservoir_size
    w_in = rng.uniform(-input_scaling, input_scaling, size=r)
    bias = rng.uniform(-bias_scaling, bias_scaling, size=r)
    w = rng.uniform(-1.0, 1.0, size=(r, r))
    mask = rng.random((r, r)) >= sparsity
    mask[np.arange(r), rng.integers(0, r, size=r)] = True
    w = np.where(mask, w, 0.0)
    radius = float(np.max(np.abs(np.linalg.eigvals(w)))) if r > 0 else 0.0
    if radius > 0.0:
        w *= spectral_radius / radius
    return ReservoirWeights(w_in=w_in, w=w, bias=bias)


class Backend:
    """The array operations a reservoir loop needs, on one library and device.

    Subclasses wrap numpy (:class:`NumpyBackend`) and torch
    (:class:`TorchBackend`); all arrays are float64 so that both give the same
    numbers to rounding.
    """

    name = "abstract"

    def asarray(self, x: NDArray[np.float64]) -> Any:
        """Move a float64 numpy array to this backend."""
        raise NotImplementedError

    def to_numpy(self, x: Any) -> NDArray[np.float64]:
        """Bring a backend array back to numpy float64."""
        raise NotImplementedError

    def zeros(self, shape: tuple[int, ...]) -> Any:
        """A float64 array of zeros."""
        raise NotImplementedError

    def tanh(self, x: Any) -> Any:
        """Element-wise tanh."""
        raise NotImplementedError

    def sqrt(self, x: Any) -> Any:
        """Element-wise square root."""
        raise NotImplementedError

    def maximum(self, x: Any, value: float) -> Any:
        """Element-wise maximum with a scalar."""
        raise NotImplementedError

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        """Element-wise select."""
        raise NotImplementedError

    def batched_gram(self, states: Any) -> Any:
        """``S^T S`` per series for ``states`` of shape (N, t, R) -> (N, R, R)."""
        raise NotImplementedError

    def solve(self, a: Any, b: Any) -> Any:
        """Batched linear solve ``a x = b`` for a of shape (N, R, R), b (N, R)."""
        raise NotImplementedError

    def cat(self, arrays: list[Any], axis: int) -> Any:
        """Concatenate along ``axis``."""
        raise NotImplementedError


class NumpyBackend(Backend):
    """Reservoir operations on numpy (CPU)."""

    name = "numpy"

    def asarray(self, x: NDArray[np.float64]) -> Any:
        return np.ascontiguousarray(x, dtype=np.float64)

    def to_numpy(self, x: Any) -> NDArray[np.float64]:
        return np.asarray(x, dtype=np.float64)

    def zeros(self, shape: tuple[int, ...]) -> Any:
        return np.zeros(shape, dtype=np.float64)

    def tanh(self, x: Any) -> Any:
        return np.tanh(x)

    def sqrt(self, x: Any) -> Any:
        return np.sqrt(x)

    def maximum(self, x: Any, value: float) -> Any:
        return np.maximum(x, value)

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        return np.where(cond, x, y)

    def batched_gram(self, states: Any) -> Any:
        return np.matmul(states.transpose(0, 2, 1), states)

    def solve(self, a: Any, b: Any) -> Any:
        return np.linalg.solve(a, b[..., None])[..., 0]

    def cat(self, arrays: list[Any], axis: int) -> Any:
        return np.concatenate(arrays, axis=axis)


class TorchBackend(Backend):
    """Reservoir operations on torch, float64, on ``device`` (``"cuda"`` or ``"cpu"``).

    Parameters
    ----------
    device : str, default="cpu"
        Torch device string.
    """

    name = "torch"

    def __init__(self, device: str = "cpu") -> None:
        try:
            import torch
        except ImportError as exc:
            raise MissingDependencyError(
                "backend='torch' needs torch: pip install 'scaleforge[torch]'"
            ) from exc
        self._torch = torch
        self.device = device

    def asarray(self, x: NDArray[np.float64]) -> Any:
        return self._torch.as_tensor(np.ascontiguousarray(x, dtype=np.float64), device=self.device)

    def to_numpy(self, x: Any) -> NDArray[np.float64]:
        return np.asarray(x.detach().cpu().numpy(), dtype=np.float64)

    def zeros(self, shape: tuple[int, ...]) -> Any:
        return self._torch.zeros(shape, dtype=self._torch.float64, device=self.device)

    def tanh(self, x: Any) -> Any:
        return self._torch.tanh(x)

    def sqrt(self, x: Any) -> Any:
        return self._torch.sqrt(x)

    def maximum(self, x: Any, value: float) -> Any:
        return self._torch.clamp(x, min=value)

    def where(self, cond: Any, x: Any, y: Any) -> Any:
        return self._torch.where(cond, x, y)

    def batched_gram(self, states: Any) -> Any:
        return self._torch.matmul(states.transpose(1, 2), states)

    def solve(self, a: Any, b: Any) -> Any:
        return self._torch.linalg.solve(a, b)

    def cat(self, arrays: list[Any], axis: int) -> Any:
        return self._torch.cat(arrays, dim=axis)


def _cuda_driver_present() -> bool:
    # Importing torch costs seconds and memory in every worker; without an NVIDIA
    # driver there can be no CUDA device, so "auto" stays on numpy without importing it.
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def get_backend(backend: str = "auto", *, owner: str = "ReservoirClustering") -> Backend:
    """Return the compute backend for a reservoir loop.

    Parameters
    ----------
    backend : {"auto", "numpy", "torch"}, default="auto"
        ``"auto"`` picks torch on CUDA when a CUDA device is available, else
        numpy; ``"torch"`` uses CUDA when available, else torch on CPU.
    owner : str, default="ReservoirClustering"
        Name used in error messages.

    Returns
    -------
    Backend
        The selected backend.

    Raises
    ------
    InvalidParameterError
        If ``backend`` is not one of the choices.
    MissingDependencyError
        If ``backend="torch"`` and torch is not installed.
    """
    check_choice(backend, "backend", owner, BACKENDS)
    if backend == "numpy":
        return NumpyBackend()
    if backend == "auto":
        has_torch = "torch" in sys.modules or importlib.util.find_spec("torch") is not None
        if not (has_torch and _cuda_driver_present()):
            return NumpyBackend()
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if backend == "auto" and device == "cpu":
        return NumpyBackend()
    logger.debug("reservoir backend: torch on %s", device)
    return TorchBackend(device)
