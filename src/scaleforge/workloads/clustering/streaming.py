"""Streaming clustering with concept-drift detection and adaptation.

:class:`StreamingClustering` keeps mini-batch k-means centres up to date over
chunks (``partial_fit``) and watches the stream of *assignment distances*
(the distance of each new sample to its nearest centre, divided by the mean
distance seen when the centres were seeded). A change of the class mixture
that brings in data the centres do not describe raises those distances; a
drift detector from ``river`` (Page-Hinkley by default, ADWIN on request)
flags it. The model then adapts: once ``adapt_after`` samples have arrived
since the alarm, its centres are re-seeded by k-means on the most recent
``buffer_size`` samples, and the event is recorded in ``drift_events_``.

Each sample is scored against the centres *before* they learn from it
(prequential order), so a detection is never explained away by the update it
triggered.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.utils import check_random_state

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError, MissingDependencyError
from scaleforge.workloads.clustering._checks import (
    check_fitted,
    check_n_clusters,
    check_series,
    nearest_centre,
)

__all__ = ["DETECTORS", "DriftEvent", "StreamingClustering"]

logger = logging.getLogger(__name__)

DETECTORS = ("page_hinkley", "adwin")

# Page-Hinkley on distances normalised to mean 1 (sd about 0.4 for Gaussian clusters in 4-D):
# a tolerance of 0.5 and a threshold of 25 gave no alarm on 20,000 stationary samples and
# detected an unseen class at 70 % of the mixture within 50 samples (benchmarks/bench_clustering.py).
_PH_DELTA = 0.5
_PH_THRESHOLD = 25.0
_ADWIN_DELTA = 1e-5


@dataclass(frozen=True)
class DriftEvent:
    """One detected change of the stream.

    Attributes
    ----------
    index : int
        Position in the stream (0-based, counting every sample given to
        ``partial_fit``) of the sample at which the detector fired.
    detector : str
        Name of the detector class.
    mean_distance_before : float
        Mean normalised assignment distance of the samples monitored before the
        alarm (about 1 when the centres fit the data).
    mean_distance_recent : float
        Mean normalised distance of the last 50 samples up to the alarm.
    """

    index: int
    detector: str
    mean_distance_before: float
    mean_distance_recent: float


def _min_distances(Z: NDArray[np.float64], centres: NDArray[np.float64]) -> NDArray[np.float64]:
    d2 = (Z * Z).sum(axis=1)[:, None] - 2.0 * Z @ centres.T + (centres * centres).sum(axis=1)[None, :]
    return np.asarray(np.sqrt(np.maximum(d2.min(axis=1), 0.0)), dtype=np.float64)


class StreamingClustering(ClusterMixin, BaseEstimator):  # type: ignore[misc]
    """Mini-batch k-means over a stream, with drift detection on assignment distances.

    Parameters
    ----------
    n_clusters : int, default=4
        Number of clusters (>= 2).
    transformer : estimator or None, default=None
        Optional representation (e.g. a :class:`ReservoirClustering` for series):
        cloned, fitted on the warm-up samples, then its ``transform`` is applied to
        every chunk. None clusters the rows of ``X`` as they are.
    detector : {"page_hinkley", "adwin"} or river drift detector, default="page_hinkley"
        Drift detector on the normalised distances; a river detector instance is
        cloned (its parameters are kept).
    warmup : int, default=500
        Samples collected before the centres are seeded (k-means, ``n_init``
        restarts) and monitoring starts.
    buffer_size : int, default=500
        Recent samples kept for re-seeding after a drift.
    adapt_after : int, default=200
        Samples to wait after an alarm before re-seeding, so the buffer holds the
        new regime; no detection runs in between.
    batch_size : int, default=256
        Chunk size used by :meth:`fit` to feed :meth:`partial_fit`.
    n_init : int, default=10
        k-means restarts when seeding.
    random_state : int, RandomState or None, default=None
        Seed.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Current centres (in the transformer's space when one is given).
    labels_ : ndarray
        Clusters of the samples of the last ``fit`` (or of the last chunk for ``partial_fit``).
    drift_events_ : list of DriftEvent
        Detected changes, in stream order.
    distances_ : ndarray of shape (n_monitored,)
        Normalised assignment distance of every monitored sample (for timelines).
    distance_index_ : ndarray of shape (n_monitored,)
        Stream position of each entry of ``distances_``.
    n_samples_seen_ : int
        Samples received so far.
    n_features_in_ : int
        Features per sample.

    Examples
    --------
    >>> from scaleforge.workloads.clustering.datasets import make_drifting_stream
    >>> stream = make_drifting_stream(3000, change_at=1500, random_state=0)
    >>> model = StreamingClustering(random_state=0).fit(stream.X)
    >>> [1500 <= e.index < 2000 for e in model.drift_events_]
    [True]
    """

    def __init__(
        self,
        n_clusters: int = 4,
        *,
        transformer: Any = None,
        detector: Any = "page_hinkley",
        warmup: int = 500,
        buffer_size: int = 500,
        adapt_after: int = 200,
        batch_size: int = 256,
        n_init: int = 10,
        random_state: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.transformer = transformer
        self.detector = detector
        self.warmup = warmup
        self.buffer_size = buffer_size
        self.adapt_after = adapt_after
        self.batch_size = batch_size
        self.n_init = n_init
        self.random_state = random_state

    # -- setup -----------------------------------------------------------------------------------

    def _validate_params(self) -> None:
        owner = type(self).__name__
        for name in ("warmup", "buffer_size", "batch_size", "n_init"):
            check_number(getattr(self, name), name, owner, minimum=1, integer=True)
        check_number(self.adapt_after, "adapt_after", owner, minimum=0, integer=True)
        if isinstance(self.detector, str):
            if self.detector not in DETECTORS:
                raise InvalidParameterError(
                    f"The 'detector' parameter of {owner} must be one of 'page_hinkley', 'adwin' or a "
                    f"river drift detector. Got {self.detector!r} instead."
                )
        elif not (hasattr(self.detector, "update") and hasattr(self.detector, "clone")):
            raise InvalidParameterError(
                f"The 'detector' parameter of {owner} must be 'page_hinkley', 'adwin' or a river drift "
                f"detector such as river.drift.ADWIN(). Got {self.detector!r} instead."
            )

    def _new_detector(self) -> Any:
        try:
            from river import drift
        except ImportError as exc:  # pragma: no cover - river is part of the workloads extra
            raise MissingDependencyError(
                "StreamingClustering needs river: pip install 'scaleforge[workloads]'"
            ) from exc
        if self.detector == "page_hinkley":
            return drift.PageHinkley(min_instances=30, delta=_PH_DELTA, threshold=_PH_THRESHOLD, mode="up")
        if self.detector == "adwin":
            return drift.ADWIN(delta=_ADWIN_DELTA)  # type: ignore[no-untyped-call]
        return self.detector.clone()

    def _reset(self) -> None:
        self.n_samples_seen_ = 0
        self.drift_events_: list[DriftEvent] = []
        self._pending: list[NDArray[np.float64]] = []
        self._buffer: deque[NDArray[np.float64]] = deque(maxlen=self.buffer_size)
        self._distances: list[float] = []
        self._distance_index: list[int] = []
        self._alarm_at: int | None = None
        self._rng = check_random_state(self.random_state)
        self._transformer: Any = None
        self._monitor_start = 0

    # -- core ------------------------------------------------------------------------------------

    def _represent(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        if self._transformer is None:
            return X
        return np.asarray(self._transformer.transform(X), dtype=np.float64)

    def _seed(self, Z: NDArray[np.float64]) -> None:
        seed = int(self._rng.randint(0, 2**31 - 1))
        km = KMeans(n_clusters=self._n_clusters, n_init=self.n_init, random_state=seed).fit(Z)
        self._mbk = MiniBatchKMeans(
            n_clusters=self._n_clusters, init=km.cluster_centers_, n_init=1, random_state=seed
        )
        self._mbk.partial_fit(Z)
        self.cluster_centers_ = np.asarray(self._mbk.cluster_centers_, dtype=np.float64)
        scale = float(_min_distances(Z, self.cluster_centers_).mean())
        self._scale = scale if scale > 0 else 1.0
        self._detector = self._new_detector()
        self._monitor_start = len(self._distances)

    def _start(self) -> NDArray[np.float64]:
        raw = np.concatenate(self._pending, axis=0)
        self._pending = []
        check_n_clusters(type(self).__name__, self.n_clusters, raw.shape[0])
        self._n_clusters = int(self.n_clusters)
        if self.transformer is not None:
            self._transformer = clone(self.transformer).fit(raw)
        Z = self._represent(raw)
        self._buffer.extend(Z)
        self._seed(Z)
        return Z

    def _monitor(self, Z: NDArray[np.float64]) -> None:
        dist = _min_distances(Z, self.cluster_centers_) / self._scale
        start = self.n_samples_seen_
        for i, value in enumerate(dist.tolist()):
            self._distances.append(value)
            self._distance_index.append(start + i)
            if self._alarm_at is not None:
                continue
            self._detector.update(value)
            if self._detector.drift_detected:
                before = self._distances[self._monitor_start : -1] or [value]
                event = DriftEvent(
                    index=start + i,
                    detector=type(self._detector).__name__,
                    mean_distance_before=float(np.mean(before)),
                    mean_distance_recent=float(np.mean(self._distances[-50:])),
                )
                self.drift_events_.append(event)
                logger.info("drift detected at sample %d by %s", event.index, event.detector)
                self._alarm_at = start + i
        self._buffer.extend(Z)
        end = start + Z.shape[0]
        if self._alarm_at is not None and end - self._alarm_at > self.adapt_after:
            self._seed(np.asarray(self._buffer))
            self._alarm_at = None
        else:
            self._mbk.partial_fit(Z)
            self.cluster_centers_ = np.asarray(self._mbk.cluster_centers_, dtype=np.float64)

    # -- public API ------------------------------------------------------------------------------

    def partial_fit(self, X: Any, y: Any = None) -> StreamingClustering:
        """Update the model with one chunk of the stream.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The next samples, in stream order.
        y : None
            Ignored.

        Returns
        -------
        self : StreamingClustering
            The updated estimator.

        Raises
        ------
        InvalidParameterError
            On bad parameters or a chunk that is not finite, 2-D, or of the fitted width.
        """
        first = not hasattr(self, "n_samples_seen_")
        X = check_series(self, X, reset=first, what="samples")
        if first:
            self._validate_params()
            self._reset()
        if not hasattr(self, "_mbk"):
            self._pending.append(X)
            if sum(p.shape[0] for p in self._pending) >= self.warmup:
                self._start()
            self.n_samples_seen_ += X.shape[0]
            if hasattr(self, "_mbk"):
                self.labels_ = self.predict(X)
            return self
        Z = self._represent(X)
        self._monitor(Z)
        self.n_samples_seen_ += X.shape[0]
        self.labels_ = nearest_centre(Z, self.cluster_centers_)
        return self

    def fit(self, X: Any, y: Any = None) -> StreamingClustering:
        """Forget the past and stream ``X`` through :meth:`partial_fit` in chunks of ``batch_size``.

        The warm-up is shortened to ``len(X)`` when ``X`` is shorter.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The whole stream, in order.
        y : None
            Ignored.

        Returns
        -------
        self : StreamingClustering
            The fitted estimator; ``labels_`` holds the final clusters of all of ``X``.
        """
        X = check_series(self, X, reset=True, what="samples")
        self._validate_params()
        check_n_clusters(type(self).__name__, self.n_clusters, X.shape[0])
        for name in ("_mbk",):
            if hasattr(self, name):
                delattr(self, name)
        self._reset()
        warmup = min(self.warmup, X.shape[0])
        self._pending.append(X[:warmup])
        self._start()
        self.n_samples_seen_ = warmup
        for begin in range(warmup, X.shape[0], self.batch_size):
            self.partial_fit(X[begin : begin + self.batch_size])
        self.labels_ = self.predict(X)
        return self

    def predict(self, X: Any) -> NDArray[np.int64]:
        """Assign samples to the current centres.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples of the fitted width.

        Returns
        -------
        ndarray of shape (n_samples,)
            Nearest current centre.
        """
        check_fitted(self, "cluster_centers_")
        X = check_series(self, X, reset=False, what="samples")
        return nearest_centre(self._represent(X), self.cluster_centers_)

    @property
    def distances_(self) -> NDArray[np.float64]:
        """Normalised assignment distance of every monitored sample."""
        check_fitted(self, "cluster_centers_")
        return np.asarray(self._distances, dtype=np.float64)

    @property
    def distance_index_(self) -> NDArray[np.int64]:
        """Stream position of each entry of :attr:`distances_`."""
        check_fitted(self, "cluster_centers_")
        return np.asarray(self._distance_index, dtype=np.int64)
