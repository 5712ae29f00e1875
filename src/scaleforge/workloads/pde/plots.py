"""PNG figures of the PDE workload (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_all", "plot_burgers_sample", "plot_convergence", "plot_darcy_sample", "plot_inverse"]


def _figure(ncols: int, width: float = 5.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, 4.2), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def plot_darcy_sample(path: str | Path, *, seed: int = 0, index: int = 0, resolution: int = 64) -> Path:
    """κ and u of one Darcy sample side by side.

    Parameters
    ----------
    path : str or Path
        PNG file to write.
    seed, index : int, default=0
        Which sample.
    resolution : int, default=64

    Returns
    -------
    Path
    """
    from scaleforge.workloads.pde.datasets import sample_darcy

    kappa, u = sample_darcy(seed, index, resolution)
    fig, (a0, a1) = _figure(2)
    ext = (0, 1, 0, 1)
    im0 = a0.imshow(kappa.T, origin="lower", extent=ext, cmap="viridis")
    a0.set_title(f"permeability κ (sample {index}, {resolution}²)")
    fig.colorbar(im0, ax=a0)
    im1 = a1.imshow(u.T, origin="lower", extent=ext, cmap="magma")
    a1.set_title("pressure u: -∇·(κ∇u) = 1, u = 0 on ∂Ω")
    fig.colorbar(im1, ax=a1)
    for ax in (a0, a1):
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_burgers_sample(path: str | Path, *, seed: int = 0, indices: tuple[int, ...] = (0, 1, 2)) -> Path:
    """u₀ and u(T) of a few Burgers samples.

    Parameters
    ----------
    path : str or Path
    seed : int, default=0
    indices : tuple of int, default=(0, 1, 2)

    Returns
    -------
    Path
    """
    from scaleforge.workloads.pde.burgers import burgers_grid
    from scaleforge.workloads.pde.datasets import DATASETS, sample_burgers

    p = DATASETS["burgers"]
    u0, ut = sample_burgers(seed, list(indices), p["resolution"])
    x = burgers_grid(p["resolution"])
    fig, (a0, a1) = _figure(2)
    for row, i in enumerate(indices):
        a0.plot(x, u0[row], label=f"sample {i}")
        a1.plot(x, ut[row], label=f"sample {i}")
    a0.set_title("initial condition u₀")
    a1.set_title(f"u(T), T={p['t_end']}, ν={p['nu']} (ETDRK4, n={p['resolution']})")
    for ax in (a0, a1):
        ax.set_xlabel("x")
        ax.set_ylabel("u")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_convergence(path: str | Path, *, levels: tuple[int, ...] = (8, 16, 32, 64, 128)) -> Path:
    """Log-log errors of P1 and P2 for the manufactured solution, with reference slopes.

    Parameters
    ----------
    path : str or Path
    levels : tuple of int

    Returns
    -------
    Path
    """
    from scaleforge.workloads.pde.verify import convergence_study

    p1 = convergence_study(levels, degree=1)
    p2 = convergence_study(tuple(n for n in levels if n <= 64), degree=2)
    fig, ax = _figure(1, width=6.5)
    for data, deg, marker in ((p1, 1, "o"), (p2, 2, "s")):
        h = np.asarray(data["h"])
        ax.loglog(h, data["l2"], marker + "-", label=f"P{deg} L2 (rate {data['l2_rate']:.2f})")
        ax.loglog(h, data["h1"], marker + "--", label=f"P{deg} H1 (rate {data['h1_rate']:.2f})")
    h = np.asarray(p1["h"])
    ax.loglog(h, p1["l2"][0] * (h / h[0]) ** 2, "k:", lw=1, label="slope 2")
    ax.loglog(h, p1["h1"][0] * (h / h[0]), "k-.", lw=1, label="slope 1")
    ax.set_xlabel("mesh size h")
    ax.set_ylabel("error")
    ax.set_title("manufactured solution u = sin πx sin πy")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_inverse(path: str | Path, *, n: int = 32, alpha: float = 1e-4) -> Path:
    """True vs recovered κ on the 8×8 coarse cells.

    Parameters
    ----------
    path : str or Path
    n : int, default=32
        Mesh cells per side of the inverse problem.
    alpha : float, default=1e-4

    Returns
    -------
    Path
    """
    from scaleforge.workloads.pde.verify import inverse_check

    out = inverse_check(n, alpha=alpha)
    true = np.exp(out["theta_true"])
    rec = out["result"].kappa
    fig, axes = _figure(3, width=4.2)
    lo, hi = float(min(true.min(), rec.min())), float(max(true.max(), rec.max()))
    for ax, data, title in (
        (axes[0], true, "true κ"),
        (axes[1], rec, f"recovered κ (rel. L2 error {out['relative_error']:.3f})"),
    ):
        im = ax.imshow(data.T, origin="lower", extent=(0, 1, 0, 1), vmin=lo, vmax=hi, cmap="viridis")
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=axes[:2])
    im2 = axes[2].imshow((rec - true).T, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r")
    axes[2].set_title("recovered − true", fontsize=9)
    fig.colorbar(im2, ax=axes[2])
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_all(out_dir: str | Path, *, quick: bool = False) -> list[Path]:
    """Write every figure into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing.
    quick : bool, default=False
        Smaller sizes (convergence study, Darcy sample, inverse problem).

    Returns
    -------
    list of Path
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    levels = (4, 8, 16, 32) if quick else (8, 16, 32, 64, 128)
    return [
        plot_darcy_sample(d / "darcy_sample.png", resolution=32 if quick else 64),
        plot_burgers_sample(d / "burgers_sample.png"),
        plot_convergence(d / "convergence.png", levels=levels),
        plot_inverse(d / "inverse.png", n=16 if quick else 32),
    ]
