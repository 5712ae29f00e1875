"""PNG figures: the 2-D embedding coloured by cluster, and a drift timeline.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot`` global
state, no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge.errors import InvalidParameterError

__all__ = ["plot_drift_timeline", "plot_embedding"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_embedding(
    embedding: NDArray[np.float64],
    labels: NDArray[np.int64],
    path: str | Path,
    *,
    truth: NDArray[np.int64] | None = None,
    title: str = "",
) -> Path:
    """Save a scatter plot of the first two embedding coordinates, coloured by cluster.

    Parameters
    ----------
    embedding : ndarray of shape (n_samples, n_dims)
        Representation (e.g. ``ReservoirClustering.embedding_``); its first two
        columns are plotted (a single column is plotted against zero).
    labels : ndarray of shape (n_samples,)
        Cluster of each point (colour).
    path : str or Path
        Output PNG file; parent directories are created.
    truth : ndarray of shape (n_samples,) or None, default=None
        True classes, shown as marker shapes when given.
    title : str, default=""
        Figure title.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    InvalidParameterError
        If the shapes disagree.
    """
    emb = np.asarray(embedding, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(labels):
        raise InvalidParameterError(
            f"The 'embedding' parameter of plot_embedding must have shape (n_samples, n_dims) with one row "
            f"per label ({len(labels)}). Got shape {emb.shape} instead."
        )
    xy = emb[:, :2] if emb.shape[1] >= 2 else np.column_stack([emb[:, 0], np.zeros(emb.shape[0])])
    fig = _figure(6.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    markers = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
    groups = [None] if truth is None else sorted(set(np.asarray(truth).tolist()))
    for g in groups:
        mask = np.ones(len(labels), dtype=bool) if g is None else np.asarray(truth) == g
        ax.scatter(
            xy[mask, 0],
            xy[mask, 1],
            c=np.asarray(labels)[mask],
            cmap="tab10",
            vmin=0,
            vmax=9,
            s=14,
            alpha=0.8,
            marker=markers[0 if g is None else int(g) % len(markers)],
            label=None if g is None else f"class {g}",
        )
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    if truth is not None:
        ax.legend(loc="best", fontsize=7, title="marker = true class", title_fontsize=7)
    ax.set_title(title or "2-D embedding, colour = cluster")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    return out


def plot_drift_timeline(
    index: NDArray[np.int64],
    distances: NDArray[np.float64],
    path: str | Path,
    *,
    detections: Sequence[int] = (),
    changes: Sequence[int] = (),
    title: str = "",
    smooth: int = 50,
) -> Path:
    """Save a timeline of assignment distances with detected drifts and true change points.

    Parameters
    ----------
    index : ndarray of shape (n,)
        Stream position of each distance.
    distances : ndarray of shape (n,)
        Normalised assignment distances (``StreamingClustering.distances_``).
    path : str or Path
        Output PNG file.
    detections : sequence of int, default=()
        Stream positions where drift was detected (red dashed lines).
    changes : sequence of int, default=()
        True change points, when known (black dotted lines).
    title : str, default=""
        Figure title.
    smooth : int, default=50
        Width of the moving average drawn over the raw distances.

    Returns
    -------
    Path
        The written file.
    """
    idx = np.asarray(index)
    dist = np.asarray(distances, dtype=np.float64)
    fig = _figure(8.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(idx, dist, lw=0.4, color="0.7", label="distance to nearest centre")
    if dist.size >= smooth > 1:
        kernel = np.ones(smooth) / smooth
        ax.plot(
            idx[smooth - 1 :],
            np.convolve(dist, kernel, mode="valid"),
            lw=1.4,
            color="C0",
            label=f"mean of {smooth}",
        )
    for i, c in enumerate(changes):
        ax.axvline(c, color="k", ls=":", lw=1.2, label="true change" if i == 0 else None)
    for i, d in enumerate(detections):
        ax.axvline(d, color="C3", ls="--", lw=1.2, label="drift detected" if i == 0 else None)
    ax.set_xlabel("sample")
    ax.set_ylabel("normalised distance")
    ax.set_title(title or "Streaming assignment distances and drift detections")
    ax.legend(loc="upper left", fontsize=7)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    return out
