"""Input validation shared by the clustering estimators (scikit-learn style, scaleforge errors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted, validate_data

from scaleforge.errors import InvalidParameterError, NotFittedError

__all__ = [
    "EstimatorNotFittedError",
    "check_fitted",
    "check_n_clusters",
    "check_series",
    "nearest_centre",
    "ragged_lengths",
]


class EstimatorNotFittedError(NotFittedError, _SklearnNotFittedError):  # type: ignore[misc]
    """scaleforge's NotFittedError that is also scikit-learn's, so both kinds of caller catch it."""


def check_fitted(estimator: Any, attribute: str) -> None:
    """Raise :class:`EstimatorNotFittedError` unless ``estimator`` has ``attribute``."""
    try:
        check_is_fitted(estimator, attribute)
    except _SklearnNotFittedError as exc:
        raise EstimatorNotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        ) from exc


def ragged_lengths(X: object) -> tuple[int, int] | None:
    """Return (shortest, longest) when ``X`` is a sequence of sequences of unequal lengths."""
    if isinstance(X, np.ndarray) and X.dtype != object:
        return None
    if not isinstance(X, (Sequence, np.ndarray)) or isinstance(X, (str, bytes)):
        return None
    lengths = set()
    for row in X:
        if isinstance(row, (str, bytes)) or not hasattr(row, "__len__"):
            return None
        lengths.add(len(row))
    if len(lengths) > 1:
        return min(lengths), max(lengths)
    return None


def check_series(
    estimator: Any,
    X: object,
    *,
    reset: bool,
    what: str = "series",
) -> NDArray[np.float64]:
    """Validate ``X`` as a 2-D float array of equal-length rows and record ``n_features_in_``.

    Parameters
    ----------
    estimator : BaseEstimator
        The estimator being fitted or used (for its name and ``n_features_in_``).
    X : array-like of shape (n_samples, n_features)
        The input.
    reset : bool
        True in ``fit`` (record the shape), False in ``predict``/``transform``
        (check it against the fitted one).
    what : str, default="series"
        What a row is, for the messages.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64

    Raises
    ------
    InvalidParameterError
        On ragged rows, NaN/inf, complex or non-numeric values, a wrong number of
        dimensions, or (``reset=False``) a different number of features than in ``fit``.
    """
    owner = type(estimator).__name__
    lengths = ragged_lengths(X)
    if lengths is not None:
        raise InvalidParameterError(
            f"The 'X' parameter of {owner} must hold {what} of equal length; got lengths from "
            f"{lengths[0]} to {lengths[1]}. Pad, truncate or resample them to a common length first."
        )
    try:
        out = validate_data(estimator, X, reset=reset, dtype=np.float64, ensure_all_finite=True)
    except InvalidParameterError:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(
            f"The 'X' parameter of {owner} must be a finite 2-D array of shape (n_samples, n_features) "
            f"with one {what[:-1] if what.endswith('s') else what} per row. {exc}"
        ) from exc
    return np.asarray(out, dtype=np.float64)


def check_n_clusters(owner: str, n_clusters: object, n_samples: int) -> int:
    """Check that ``n_clusters`` is an int in ``[2, n_samples]`` and return it.

    Raises
    ------
    InvalidParameterError
        With the value and ``n_samples`` in the message.
    """
    if n_samples < 2:
        raise InvalidParameterError(
            f"{owner} needs at least 2 samples to cluster; got n_samples={n_samples}. Pass more rows in X."
        )
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 2:
        raise InvalidParameterError(
            f"The 'n_clusters' parameter of {owner} must be an int >= 2. Got {n_clusters!r} instead."
        )
    if n_clusters > n_samples:
        raise InvalidParameterError(
            f"The 'n_clusters' parameter of {owner} must be <= the number of samples; got "
            f"n_clusters={n_clusters} with n_samples={n_samples}. Pass more samples or fewer clusters."
        )
    return int(n_clusters)


def nearest_centre(Z: NDArray[np.float64], centres: NDArray[np.float64]) -> NDArray[np.int64]:
    """Index of the nearest centre (squared Euclidean) of every row of ``Z``.

    Plain numpy on purpose: scikit-learn's ``KMeans.predict`` reuses the OpenMP
    thread count recorded at fit time, and a fitted model shipped to a forked
    worker would then hang in an OpenMP region (see :func:`.ensemble.parallel_map`).
    """
    d2 = (Z * Z).sum(axis=1)[:, None] - 2.0 * (Z @ centres.T) + (centres * centres).sum(axis=1)[None, :]
    return np.asarray(np.argmin(d2, axis=1), dtype=np.int64)
