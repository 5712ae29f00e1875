"""Clustering many series in bounded memory: chunks through :func:`scaleforge.map`.

A model is fitted on a subsample; every chunk of series is then labelled by a
task that holds only that chunk (``predict`` uses the fitted centres, so
chunks are independent). :func:`run_at_scale` is the workload's scale run:
AR(2) series generated *inside* each task from a per-chunk seed, so neither
the driver nor the task queue ever holds the whole data set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import adjusted_rand_score

from scaleforge._validation import check_number
from scaleforge.workloads.clustering.datasets import make_ar2
from scaleforge.workloads.clustering.ensemble import parallel_map

__all__ = ["ScaleReport", "predict_in_chunks", "run_at_scale"]


def _predict_slice(bounds: tuple[int, int], *, estimator: Any, X: Any) -> NDArray[np.int64]:
    start, stop = bounds
    return np.asarray(estimator.predict(np.asarray(X[start:stop], dtype=np.float64)), dtype=np.int64)


def predict_in_chunks(
    estimator: Any,
    X: Any,
    *,
    chunk_size: int = 2000,
    executor: Any = None,
    progress: bool | None = False,
) -> NDArray[np.int64]:
    """Label the rows of a large array chunk by chunk with a fitted clusterer.

    Parameters
    ----------
    estimator : fitted clusterer
        Anything with ``predict`` (e.g. a fitted :class:`ReservoirClustering`).
    X : array-like of shape (n_samples, n_features)
        Rows to label; a ``numpy.memmap`` keeps memory bounded (each task reads
        only its slice when workers share the file).
    chunk_size : int, default=2000
        Rows per task.
    executor : str, Executor or None, default=None
        Where tasks run (see :func:`scaleforge.map`).
    progress : bool or None, default=False
        Progress bar.

    Returns
    -------
    ndarray of shape (n_samples,)
        Labels in row order.

    Raises
    ------
    InvalidParameterError
        If ``chunk_size`` < 1.
    """
    check_number(chunk_size, "chunk_size", "predict_in_chunks", minimum=1, integer=True)
    n = len(X)
    bounds = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    parts = parallel_map(
        _predict_slice, bounds, executor=executor, progress=progress, estimator=estimator, X=X
    )
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _ar2_chunk(
    index: int, *, estimator: Any, chunk_size: int, length: int, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    data = make_ar2(chunk_size, length, random_state=np.random.default_rng([seed, index]))
    return np.asarray(estimator.predict(data.X), dtype=np.int64), data.y


@dataclass(frozen=True)
class ScaleReport:
    """What :func:`run_at_scale` measured.

    Attributes
    ----------
    n_series : int
        Series labelled (fit subsample excluded).
    length : int
        Steps per series.
    chunk_size : int
        Series per task.
    fit_seconds : float
        Time to fit the model on the subsample.
    predict_seconds : float
        Wall time of the chunked map over all series.
    series_per_s : float
        ``n_series / predict_seconds``.
    ari : float
        ARI of the labels against the generating classes.
    chunk_bytes : int
        Size of one chunk of input, the per-task memory bound (plus the reservoir state).
    """

    n_series: int
    length: int
    chunk_size: int
    fit_seconds: float
    predict_seconds: float
    series_per_s: float
    ari: float
    chunk_bytes: int


def run_at_scale(
    estimator: Any,
    n_series: int = 100_000,
    length: int = 500,
    *,
    chunk_size: int = 2000,
    fit_series: int = 2000,
    executor: Any = None,
    progress: bool | None = False,
    random_state: int = 0,
) -> ScaleReport:
    """Fit on a subsample of AR(2) series, then label ``n_series`` more in chunked tasks.

    Parameters
    ----------
    estimator : clusterer
        Unfitted clusterer with ``fit`` and ``predict`` (fitted here).
    n_series : int, default=100_000
        Series labelled by the map (rounded up to whole chunks).
    length : int, default=500
        Steps per series.
    chunk_size : int, default=2000
        Series per task; memory per task is about ``chunk_size * length * 8`` bytes.
    fit_series : int, default=2000
        Size of the fitting subsample.
    executor : str, Executor or None, default=None
        Where tasks run (see :func:`scaleforge.map`).
    progress : bool or None, default=False
        Progress bar.
    random_state : int, default=0
        Seed of the data.

    Returns
    -------
    ScaleReport
        Throughput, timings and ARI.
    """
    owner = "run_at_scale"
    for name, value in (("n_series", n_series), ("chunk_size", chunk_size), ("fit_series", fit_series)):
        check_number(value, name, owner, minimum=1, integer=True)
    check_number(length, "length", owner, minimum=2, integer=True)
    t0 = time.perf_counter()
    train = make_ar2(fit_series, length, random_state=np.random.default_rng([random_state, 2**31]))
    estimator.fit(train.X)
    fit_seconds = time.perf_counter() - t0
    n_chunks = -(-n_series // chunk_size)
    t1 = time.perf_counter()
    parts = parallel_map(
        _ar2_chunk,
        range(n_chunks),
        executor=executor,
        progress=progress,
        estimator=estimator,
        chunk_size=chunk_size,
        length=length,
        seed=random_state,
    )
    predict_seconds = time.perf_counter() - t1
    labels = np.concatenate([p[0] for p in parts])
    truth = np.concatenate([p[1] for p in parts])
    return ScaleReport(
        n_series=int(labels.size),
        length=length,
        chunk_size=chunk_size,
        fit_seconds=fit_seconds,
        predict_seconds=predict_seconds,
        series_per_s=labels.size / predict_seconds if predict_seconds > 0 else float("inf"),
        ari=float(adjusted_rand_score(truth, labels)),
        chunk_bytes=chunk_size * length * 8,
    )
