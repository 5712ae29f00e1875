"""Cluster reports and balanced team assignment (the original colour-profile application)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError

__all__ = ["COLOUR_NAMES", "ClusterReport", "balanced_teams", "cluster_report"]

#: Column names of a colour-energy profile.
COLOUR_NAMES: tuple[str, ...] = ("red", "yellow", "green", "blue")


@dataclass(frozen=True)
class ClusterReport:
    """Summary of a clustering of profiles.

    Attributes
    ----------
    sizes : dict of int to int
        Members per cluster.
    centroids : dict of int to dict of str to float
        Mean profile of each cluster, by feature name.
    dominant : dict of int to str
        Feature with the highest centroid value per cluster.
    feature_names : tuple of str
        Names of the profile columns.
    """

    sizes: dict[int, int]
    centroids: dict[int, dict[str, float]]
    dominant: dict[int, str]
    feature_names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (string keys)."""
        return {
            "sizes": {str(k): v for k, v in self.sizes.items()},
            "centroids": {str(k): v for k, v in self.centroids.items()},
            "dominant": {str(k): v for k, v in self.dominant.items()},
            "feature_names": list(self.feature_names),
        }

    def to_text(self) -> str:
        """Return a plain-text table: one line per cluster with its size and centroid."""
        header = "cluster  size  " + "  ".join(f"{n:>7}" for n in self.feature_names) + "  dominant"
        lines = [header]
        for k, size in self.sizes.items():
            values = "  ".join(f"{self.centroids[k][n]:7.1f}" for n in self.feature_names)
            lines.append(f"{k:>7}  {size:>4}  {values}  {self.dominant[k]}")
        return "\n".join(lines)


def _labels(labels: Any, n: int | None, owner: str) -> NDArray[np.int64]:
    arr = np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or (arr.size and arr.min() < 0):
        raise InvalidParameterError(
            f"The 'labels' parameter of {owner} must be a 1-D array of non-negative integer cluster labels. "
            f"Got shape {arr.shape} and dtype {arr.dtype} instead."
        )
    if n is not None and arr.size != n:
        raise InvalidParameterError(
            f"The 'labels' parameter of {owner} must have one label per row of X ({n}). Got {arr.size} instead."
        )
    return arr.astype(np.int64)


def cluster_report(X: Any, labels: Any, *, feature_names: Sequence[str] | None = None) -> ClusterReport:
    """Summarise clusters: sizes, centroid profiles and the dominant feature of each.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Profiles.
    labels : array-like of shape (n_samples,)
        Cluster of each profile.
    feature_names : sequence of str or None, default=None
        Column names; :data:`COLOUR_NAMES` for 4 columns, else ``x0, x1, ...``.

    Returns
    -------
    ClusterReport

    Raises
    ------
    InvalidParameterError
        If shapes disagree or labels are not non-negative integers.

    Examples
    --------
    >>> import numpy as np
    >>> report = cluster_report(np.array([[60, 10, 10, 20], [50, 20, 10, 20]]), np.array([0, 0]))
    >>> report.sizes, report.dominant
    ({0: 2}, {0: 'red'})
    """
    owner = "cluster_report"
    data = np.asarray(X, dtype=np.float64)
    if data.ndim != 2:
        raise InvalidParameterError(
            f"The 'X' parameter of {owner} must be 2-D (n_samples, n_features). Got shape {data.shape} instead."
        )
    y = _labels(labels, data.shape[0], owner)
    if feature_names is None:
        names = COLOUR_NAMES if data.shape[1] == 4 else tuple(f"x{i}" for i in range(data.shape[1]))
    else:
        names = tuple(feature_names)
        if len(names) != data.shape[1]:
            raise InvalidParameterError(
                f"The 'feature_names' parameter of {owner} must name the {data.shape[1]} columns of X. "
                f"Got {len(names)} names instead."
            )
    sizes: dict[int, int] = {}
    centroids: dict[int, dict[str, float]] = {}
    dominant: dict[int, str] = {}
    for k in np.unique(y).tolist():
        members = data[y == k]
        mean = members.mean(axis=0)
        sizes[k] = int(members.shape[0])
        centroids[k] = {n: float(v) for n, v in zip(names, mean, strict=True)}
        dominant[k] = names[int(np.argmax(mean))]
    return ClusterReport(sizes=sizes, centroids=centroids, dominant=dominant, feature_names=names)


def balanced_teams(labels: Any, n_teams: int, *, random_state: int | None = None) -> NDArray[np.int64]:
    """Split people into teams of near-equal size, spreading every cluster across teams.

    Members of each cluster are dealt round-robin onto the teams, continuing
    the deal from one cluster to the next, so that every team's size and every
    team's count of each cluster differ by at most one from any other team's.

    Parameters
    ----------
    labels : array-like of shape (n_people,)
        Cluster of each person.
    n_teams : int
        Number of teams (1 <= n_teams <= n_people).
    random_state : int or None, default=None
        Shuffles who, within a cluster, goes to which team.

    Returns
    -------
    ndarray of shape (n_people,)
        Team index of each person.

    Raises
    ------
    InvalidParameterError
        If ``n_teams`` is out of range or the labels are invalid.

    Examples
    --------
    >>> import numpy as np
    >>> teams = balanced_teams(np.array([0, 0, 1, 1]), 2, random_state=0)
    >>> np.bincount(teams[:2]).tolist(), np.bincount(teams[2:]).tolist()
    ([1, 1], [1, 1])
    """
    owner = "balanced_teams"
    y = _labels(labels, None, owner)
    check_number(n_teams, "n_teams", owner, minimum=1, maximum=max(int(y.size), 1), integer=True)
    rng = np.random.default_rng(random_state)
    # Largest clusters first so that the round-robin remainders fall on different teams.
    clusters, counts = np.unique(y, return_counts=True)
    order = clusters[np.argsort(-counts, kind="stable")]
    teams = np.empty(y.size, dtype=np.int64)
    position = 0
    for k in order.tolist():
        members = rng.permutation(np.flatnonzero(y == k))
        teams[members] = (position + np.arange(members.size)) % n_teams
        position += members.size
    return teams
