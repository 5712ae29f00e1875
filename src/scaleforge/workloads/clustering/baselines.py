"""Baselines the reservoir methods are compared with, in the same run.

- :func:`raw_kmeans` — k-means on the raw series (each time step a feature).
- :func:`spectral_kmeans` — k-means on the log power spectrum (Welch-averaged
  log-periodogram, PCA-reduced). On linear Gaussian processes such as AR(2)
  this is close to a sufficient statistic, so it is a strong baseline.
- :func:`periodogram_kmeans` — the same on the raw (unaveraged) log-periodogram.
- :func:`dtw_kmeans` — tslearn's k-means under dynamic time warping.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

__all__ = ["dtw_kmeans", "log_spectrum", "periodogram_kmeans", "raw_kmeans", "spectral_kmeans"]

_EPS = 1e-12


def raw_kmeans(X: NDArray[np.float64], n_clusters: int, *, random_state: int = 0) -> NDArray[np.int64]:
    """k-means (``n_init=10``) on the rows of ``X`` as they are.

    Parameters
    ----------
    X : ndarray of shape (n_series, n_steps)
        Series.
    n_clusters : int
        Number of clusters.
    random_state : int, default=0
        Seed.

    Returns
    -------
    ndarray of shape (n_series,)
        Labels.
    """
    return np.asarray(KMeans(n_clusters, n_init=10, random_state=random_state).fit_predict(X), dtype=np.int64)


def log_spectrum(X: NDArray[np.float64], *, segment: int | None = 64) -> NDArray[np.float64]:
    """Log power spectrum of every row: Welch-averaged, or the raw periodogram when ``segment`` is None.

    Parameters
    ----------
    X : ndarray of shape (n_series, n_steps)
        Series.
    segment : int or None, default=64
        Welch segment length (clipped to the series length); None for the raw periodogram.

    Returns
    -------
    ndarray of shape (n_series, n_frequencies)
        ``log(power + 1e-12)``.
    """
    if segment is None:
        power = np.abs(np.fft.rfft(X, axis=1)) ** 2 / X.shape[1]
    else:
        from scipy.signal import welch

        _, power = welch(X, nperseg=min(segment, X.shape[1]), axis=1)
    return np.asarray(np.log(power + _EPS), dtype=np.float64)


def _pca_kmeans(F: NDArray[np.float64], n_clusters: int, random_state: int) -> NDArray[np.int64]:
    n_components = min(10, F.shape[0], F.shape[1])
    Z = PCA(n_components=n_components, random_state=random_state).fit_transform(F)
    return np.asarray(KMeans(n_clusters, n_init=10, random_state=random_state).fit_predict(Z), dtype=np.int64)


def spectral_kmeans(X: NDArray[np.float64], n_clusters: int, *, random_state: int = 0) -> NDArray[np.int64]:
    """k-means on PCA-10 of the Welch log power spectrum (segments of 64 steps).

    Parameters
    ----------
    X : ndarray of shape (n_series, n_steps)
        Series.
    n_clusters : int
        Number of clusters.
    random_state : int, default=0
        Seed.

    Returns
    -------
    ndarray of shape (n_series,)
        Labels.
    """
    return _pca_kmeans(log_spectrum(X), n_clusters, random_state)


def periodogram_kmeans(
    X: NDArray[np.float64], n_clusters: int, *, random_state: int = 0
) -> NDArray[np.int64]:
    """k-means on PCA-10 of the raw log-periodogram (no averaging; noisier than Welch).

    Parameters
    ----------
    X : ndarray of shape (n_series, n_steps)
        Series.
    n_clusters : int
        Number of clusters.
    random_state : int, default=0
        Seed.

    Returns
    -------
    ndarray of shape (n_series,)
        Labels.
    """
    return _pca_kmeans(log_spectrum(X, segment=None), n_clusters, random_state)


def dtw_kmeans(X: NDArray[np.float64], n_clusters: int, *, random_state: int = 0) -> NDArray[np.int64]:
    """tslearn's ``TimeSeriesKMeans(metric="dtw")``; quadratic in the series length, use on small sets.

    Parameters
    ----------
    X : ndarray of shape (n_series, n_steps)
        Series.
    n_clusters : int
        Number of clusters.
    random_state : int, default=0
        Seed.

    Returns
    -------
    ndarray of shape (n_series,)
        Labels.
    """
    with warnings.catch_warnings():
        # tslearn warns at import when the optional h5py is absent; we never use its HDF5 features.
        warnings.filterwarnings("ignore", message="h5py not installed", category=UserWarning)
        from tslearn.clustering import TimeSeriesKMeans

    model = TimeSeriesKMeans(
        n_clusters=n_clusters, metric="dtw", n_init=2, max_iter=10, random_state=random_state
    )
    return np.asarray(model.fit_predict(X[:, :, None]), dtype=np.int64)
