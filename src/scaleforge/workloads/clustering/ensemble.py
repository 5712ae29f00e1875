"""Consensus clustering over seeds and bootstraps, run as :func:`scaleforge.map` tasks.

Each run fits a clone of the estimator with its own ``random_state`` (and,
with ``bootstrap=True``, on a bootstrap resample of the rows) and labels every
row. Cluster numbers are arbitrary per run, so runs are aligned to a
reference run (the one most similar to all others, by ARI) with the Hungarian
algorithm (:func:`scipy.optimize.linear_sum_assignment` on the contingency
table) before a majority vote. Stability is the mean pairwise adjusted Rand
index between runs — it needs no alignment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score
from sklearn.utils import check_random_state

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.monitor import metrics

__all__ = ["ConsensusResult", "align_labels", "consensus_clustering", "parallel_map"]

logger = logging.getLogger(__name__)


def _one_openmp_thread(item: Any, *, _task: Callable[..., Any], **shared: Any) -> Any:
    # Forked workers inherit the parent's OpenMP (libgomp) state: if the parent already ran a
    # parallel region (scikit-learn's KMeans does), a multi-threaded region in the child hangs.
    # One OpenMP thread per task avoids that and also stops workers x threads oversubscribing cores.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        return _task(item, **shared)


def parallel_map(
    fn: Callable[..., Any],
    items: Iterable[Any],
    *,
    executor: Any = None,
    progress: bool | None = False,
    **shared: Any,
) -> list[Any]:
    """Run ``fn(item, **shared)`` for every item through :func:`scaleforge.map`.

    Parameters
    ----------
    fn : callable
        A picklable module-level function.
    items : iterable
        One task per item.
    executor : str, Executor or None, default=None
        Passed to :func:`scaleforge.map` (None: the configured default).
    progress : bool or None, default=False
        Progress bar.
    **shared
        Keyword arguments sent once to every task.

    Returns
    -------
    list
        Results in item order.

    Notes
    -----
    Each task runs with OpenMP limited to one thread (``threadpoolctl``): forked
    workers otherwise hang in scikit-learn's k-means once the parent process has
    used OpenMP, and one thread per worker is what a full pool wants anyway.
    Falls back to a serial loop, with a warning in the log, when the compute
    layer is not installed in this build.
    """
    try:
        from scaleforge.compute.map import map as sf_map
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("scaleforge"):
            raise
        logger.warning("scaleforge.compute.map unavailable (%s); running tasks serially", exc)
        return [fn(item, **shared) for item in items]
    return list(sf_map(_one_openmp_thread, items, executor=executor, progress=progress, _task=fn, **shared))


@dataclass(frozen=True)
class ConsensusResult:
    """Outcome of :func:`consensus_clustering`.

    Attributes
    ----------
    labels : ndarray of shape (n_samples,)
        Majority vote of the aligned runs, numbered like the reference run.
    stability : float
        Mean adjusted Rand index over all pairs of runs (1 = every run agrees).
    pairwise_ari : ndarray of shape (n_runs, n_runs)
        ARI between every pair of runs (1 on the diagonal).
    run_labels : ndarray of shape (n_runs, n_samples)
        Each run's labels after alignment to the reference run.
    agreement : ndarray of shape (n_samples,)
        Fraction of runs that voted for the consensus label of each sample.
    reference : int
        Index of the run used as the alignment reference.
    """

    labels: NDArray[np.int64]
    stability: float
    pairwise_ari: NDArray[np.float64]
    run_labels: NDArray[np.int64]
    agreement: NDArray[np.float64]
    reference: int


def align_labels(labels: NDArray[np.int64], reference: NDArray[np.int64]) -> NDArray[np.int64]:
    """Renumber ``labels`` to best match ``reference`` (Hungarian matching).

    Parameters
    ----------
    labels, reference : ndarray of shape (n_samples,)
        Non-negative integer labels of the same samples.

    Returns
    -------
    ndarray of shape (n_samples,)
        ``labels`` renumbered so that the number of samples sharing a label with
        ``reference`` is maximal. Clusters left unmatched (when ``labels`` has more
        clusters than ``reference``) get fresh numbers after the reference's.

    Examples
    --------
    >>> import numpy as np
    >>> align_labels(np.array([1, 1, 0, 0, 2]), np.array([0, 0, 1, 1, 2])).tolist()
    [0, 0, 1, 1, 2]
    """
    k = int(max(labels.max(initial=0), reference.max(initial=0))) + 1
    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (labels, reference), 1)
    rows, cols = linear_sum_assignment(-table)
    mapping = np.empty(k, dtype=np.int64)
    mapping[rows] = cols
    return mapping[labels]


def _run_once(
    seed: int,
    *,
    estimator: Any,
    X: NDArray[np.float64],
    bootstrap: bool,
) -> NDArray[np.int64]:
    model = clone(estimator)
    if "random_state" in model.get_params():
        model.set_params(random_state=seed)
    if bootstrap:
        rows = np.random.default_rng(seed).integers(0, X.shape[0], size=X.shape[0])
        model.fit(X[rows])
        return np.asarray(model.predict(X), dtype=np.int64)
    return np.asarray(model.fit(X).labels_, dtype=np.int64)


def _record_ensemble(estimator: str, n_runs: int, stability: float) -> None:
    """Count consensus ensembles and their runs, and export the latest stability."""
    metrics.counter(
        "scaleforge_clustering_ensembles_total", "Consensus clustering ensembles completed", ["estimator"]
    ).labels(estimator=estimator).inc()
    metrics.counter(
        "scaleforge_clustering_ensemble_runs_total",
        "Clustering runs fitted inside consensus ensembles",
        ["estimator"],
    ).labels(estimator=estimator).inc(n_runs)
    metrics.gauge(
        "scaleforge_clustering_stability",
        "Mean pairwise adjusted Rand index of the latest consensus ensemble",
        ["estimator"],
        multiprocess_mode="mostrecent",
    ).labels(estimator=estimator).set(stability)


def consensus_clustering(
    estimator: Any,
    X: Any,
    *,
    n_runs: int = 10,
    bootstrap: bool = False,
    executor: Any = None,
    progress: bool | None = False,
    random_state: int | None = None,
) -> ConsensusResult:
    """Cluster ``X`` ``n_runs`` times in parallel and combine the runs by aligned majority vote.

    Parameters
    ----------
    estimator : clusterer
        An unfitted scikit-learn style clusterer with ``labels_`` after ``fit``
        (and ``predict`` when ``bootstrap=True``), e.g. :class:`ReservoirClustering`.
    X : array-like of shape (n_samples, n_features)
        The data.
    n_runs : int, default=10
        Number of runs (>= 2), each a :func:`scaleforge.map` task.
    bootstrap : bool, default=False
        Fit each run on a bootstrap resample and label all rows with ``predict``;
        otherwise runs differ only by seed.
    executor : str, Executor or None, default=None
        Where the runs execute (see :func:`scaleforge.map`).
    progress : bool or None, default=False
        Progress bar of the map.
    random_state : int or None, default=None
        Seeds of the runs are drawn from it.

    Returns
    -------
    ConsensusResult
        Consensus labels, stability and per-run details.

    Raises
    ------
    InvalidParameterError
        If ``n_runs`` < 2, ``X`` is not a finite 2-D array, or the estimator has no ``fit``.

    Examples
    --------
    >>> from scaleforge.workloads.clustering import ProfileClustering
    >>> from scaleforge.workloads.clustering.datasets import make_profiles
    >>> data = make_profiles(200, spread=5.0, random_state=0)
    >>> result = consensus_clustering(ProfileClustering(4), data.X, n_runs=3, executor="threads")
    >>> round(result.stability, 2)
    1.0
    """
    owner = "consensus_clustering"
    check_number(n_runs, "n_runs", owner, minimum=2, integer=True)
    if not hasattr(estimator, "fit") or not hasattr(estimator, "get_params"):
        raise InvalidParameterError(
            f"The 'estimator' parameter of {owner} must be a scikit-learn style clusterer such as "
            f"ReservoirClustering(n_clusters=4). Got {estimator!r} instead."
        )
    try:
        data = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"The 'X' parameter of {owner} must be a numeric 2-D array. Got {type(X).__name__}: {exc}"
        ) from exc
    if data.ndim != 2 or not np.isfinite(data).all():
        raise InvalidParameterError(
            f"The 'X' parameter of {owner} must be a finite 2-D array of shape (n_samples, n_features). "
            f"Got shape {data.shape}{'' if np.isfinite(data).all() else ' with NaN or inf values'}."
        )
    seeds = check_random_state(random_state).randint(0, 2**31 - 1, size=n_runs).tolist()
    runs: Sequence[NDArray[np.int64]] = parallel_map(
        _run_once,
        seeds,
        executor=executor,
        progress=progress,
        estimator=estimator,
        X=data,
        bootstrap=bootstrap,
    )
    labels = np.stack([np.asarray(r, dtype=np.int64) for r in runs])
    pairwise = np.eye(n_runs)
    for i in range(n_runs):
        for j in range(i + 1, n_runs):
            pairwise[i, j] = pairwise[j, i] = adjusted_rand_score(labels[i], labels[j])
    off_diagonal = pairwise[~np.eye(n_runs, dtype=bool)]
    reference = int(np.argmax(pairwise.sum(axis=1)))
    aligned = np.stack([align_labels(run, labels[reference]) for run in labels])
    k = int(aligned.max()) + 1
    votes = np.zeros((k, aligned.shape[1]), dtype=np.int64)
    for run in aligned:
        votes[run, np.arange(run.size)] += 1
    consensus = np.argmax(votes, axis=0).astype(np.int64)
    agreement = votes.max(axis=0) / float(n_runs)
    _record_ensemble(type(estimator).__name__, n_runs, float(off_diagonal.mean()))
    return ConsensusResult(
        labels=consensus,
        stability=float(off_diagonal.mean()),
        pairwise_ari=pairwise,
        run_labels=aligned,
        agreement=agreement,
        reference=reference,
    )
