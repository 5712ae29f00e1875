"""PNG figures of operator predictions, calibration and active learning (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["plot_active_learning", "plot_burgers", "plot_calibration", "plot_darcy"]


def _figure(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def plot_burgers(
    y_true: NDArray[np.float64],
    mean: NDArray[np.float64],
    std: NDArray[np.float64],
    path: str | os.PathLike[str],
    *,
    x0: NDArray[np.float64] | None = None,
    n: int = 3,
) -> Path:
    """Prediction against truth with a ±2σ band for ``n`` 1D test fields.

    Parameters
    ----------
    y_true, mean, std : ndarray of shape (n_samples, s)
    path : path-like
        PNG file to write.
    x0 : ndarray of shape (n_samples, s), optional
        Initial conditions, drawn faintly for context.
    n : int, default=3

    Returns
    -------
    Path
    """
    n = min(n, y_true.shape[0])
    fig, axes = _figure(n, 2, (11.0, 2.3 * n))
    grid = np.arange(y_true.shape[1]) / y_true.shape[1]
    for i in range(n):
        ax = axes[i, 0]
        if x0 is not None:
            ax.plot(grid, x0[i], color="0.7", lw=1, label="u₀")
        ax.fill_between(grid, mean[i] - 2 * std[i], mean[i] + 2 * std[i], color="C0", alpha=0.3, label="±2σ")
        ax.plot(grid, y_true[i], color="k", lw=1.5, label="truth u(T)")
        ax.plot(grid, mean[i], color="C0", lw=1.2, ls="--", label="mean")
        ax.set_ylabel(f"test {i}")
        # the band is often thinner than the line: show the residual against ±2σ as well
        res = axes[i, 1]
        res.fill_between(grid, -2 * std[i], 2 * std[i], color="C0", alpha=0.3, label="±2σ")
        res.plot(grid, y_true[i] - mean[i], color="C3", lw=1.0, label="truth − mean")
        res.axhline(0.0, color="0.5", lw=0.5)
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=4)
    axes[0, 1].legend(loc="upper right", fontsize=8, ncol=2)
    axes[-1, 0].set_xlabel("x")
    axes[-1, 1].set_xlabel("x")
    axes[0, 0].set_title("prediction and truth")
    axes[0, 1].set_title("error and its predicted ±2σ band")
    fig.suptitle("Burgers: predicted mean ± 2σ against the solver")
    return _save(fig, path)


def plot_darcy(
    kappa: NDArray[np.float64],
    y_true: NDArray[np.float64],
    mean: NDArray[np.float64],
    std: NDArray[np.float64],
    path: str | os.PathLike[str],
) -> Path:
    """Maps of κ, the true pressure, the predicted mean, std and absolute error for one field.

    Parameters
    ----------
    kappa, y_true, mean, std : ndarray of shape (s, s)
    path : path-like

    Returns
    -------
    Path
    """
    fig, axes = _figure(1, 5, (16.0, 3.4))
    panels = [
        ("permeability κ", kappa, "viridis"),
        ("truth u", y_true, "magma"),
        ("predicted mean", mean, "magma"),
        ("predicted std", std, "cividis"),
        ("|error|", np.abs(mean - y_true), "cividis"),
    ]
    vmin, vmax = float(min(y_true.min(), mean.min())), float(max(y_true.max(), mean.max()))
    for ax, (title, field, cmap) in zip(axes[0], panels, strict=True):
        shared = title in ("truth u", "predicted mean")
        im = ax.imshow(
            field.T, origin="lower", cmap=cmap, vmin=vmin if shared else None, vmax=vmax if shared else None
        )
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)


def plot_calibration(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | os.PathLike[str]
) -> Path:
    """Observed against nominal central-interval coverage, one line per model.

    Parameters
    ----------
    curves : mapping of name to (nominal, observed)
    path : path-like

    Returns
    -------
    Path
    """
    fig, axes = _figure(1, 1, (4.8, 4.6))
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], color="0.5", ls=":", label="ideal")
    for name, (nominal, observed) in curves.items():
        ax.plot(nominal, observed, marker="o", ms=3, label=name)
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("observed coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Calibration (below the diagonal = over-confident)")
    return _save(fig, path)


def plot_active_learning(
    labels: Sequence[int], errors: Mapping[str, Sequence[float]], path: str | os.PathLike[str]
) -> Path:
    """Test error against labelled fields for each acquisition strategy.

    Parameters
    ----------
    labels : sequence of int
    errors : mapping of strategy to sequence of float
    path : path-like

    Returns
    -------
    Path
    """
    fig, axes = _figure(1, 1, (5.2, 4.0))
    ax = axes[0, 0]
    for name, errs in errors.items():
        ax.plot(labels, errs, marker="o", label=name)
    ax.set_xlabel("labelled fields (simulations)")
    ax.set_ylabel("test relative L2")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Active learning on Darcy")
    return _save(fig, path)
