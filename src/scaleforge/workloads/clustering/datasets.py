"""Seeded data sets for the clustering workload.

Synthetic generators are deterministic given ``random_state``; the two real
data sets ship inside installed packages and load offline:

- :func:`make_ar2` — K classes of AR(2) processes (the recipe of
  WORKLOADS-REFERENCE.md: poles r in {0.95, 0.80} x omega in {0.20, 0.35}).
- :func:`make_nonlinear` — logistic-map regimes, one growth rate per class.
- :func:`make_profiles` — four-dimensional colour-energy profiles around
  colour-dominant centres, with the oracle nearest-true-centre labels.
- :func:`make_drifting_stream` — profiles whose class mixture changes at a
  known sample, for the streaming drift test.
- :func:`load_trace` — the UCR "Trace" set bundled with tslearn.
- :func:`load_digits` — scikit-learn's 8x8 digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError

__all__ = [
    "AR2_CLASSES",
    "LOGISTIC_RATES",
    "PROFILE_CENTRES",
    "Dataset",
    "load_digits",
    "load_trace",
    "make_ar2",
    "make_drifting_stream",
    "make_nonlinear",
    "make_profiles",
    "oracle_labels",
]

#: (pole radius r, pole angle omega) of each AR(2) class:
#: x_t = 2 r cos(omega) x_{t-1} - r^2 x_{t-2} + noise.
AR2_CLASSES: tuple[tuple[float, float], ...] = ((0.95, 0.20), (0.95, 0.35), (0.80, 0.20), (0.80, 0.35))

#: Logistic-map growth rate of each nonlinear class (periodic and chaotic regimes).
LOGISTIC_RATES: tuple[float, ...] = (3.50, 3.70, 3.83, 3.97)

#: Colour-energy centres (red, yellow, green, blue) on a 0-100 scale summing to 100:
#: one dominant colour at 55, the three others at 15.
PROFILE_CENTRES: NDArray[np.float64] = np.full((4, 4), 15.0) + np.eye(4) * 40.0

_AR2_BURN_IN = 100


@dataclass(frozen=True)
class Dataset:
    """A data set with its ground truth.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        Series (one per row, time along the columns) or profiles.
    y : ndarray of shape (n_samples,)
        True class of each row, ``0 .. n_classes - 1``.
    name : str
        Short name used in reports.
    """

    X: NDArray[np.float64]
    y: NDArray[np.int64]
    name: str


def _rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def _balanced_labels(n: int, k: int, rng: np.random.Generator) -> NDArray[np.int64]:
    return rng.permutation(np.arange(n, dtype=np.int64) % k)


def _check_sizes(owner: str, n_series: int, length: int, n_classes: int, max_classes: int) -> None:
    check_number(n_series, "n_series", owner, minimum=1, integer=True)
    check_number(length, "length", owner, minimum=2, integer=True)
    check_number(n_classes, "n_classes", owner, minimum=1, maximum=max_classes, integer=True)


def _zscore(X: NDArray[np.float64]) -> NDArray[np.float64]:
    mean = X.mean(axis=1, keepdims=True)
    std = X.std(axis=1, keepdims=True)
    return np.asarray((X - mean) / np.where(std > 0, std, 1.0), dtype=np.float64)


def make_ar2(
    n_series: int = 400,
    length: int = 500,
    *,
    n_classes: int = 4,
    random_state: int | np.random.Generator | None = None,
) -> Dataset:
    """Generate K classes of AR(2) processes, z-scored per series.

    Parameters
    ----------
    n_series : int, default=400
        Number of series; classes are balanced (sizes differ by at most one).
    length : int, default=500
        Samples per series, kept after a burn-in of 100 steps.
    n_classes : int, default=4
        How many of :data:`AR2_CLASSES` to use (1-4).
    random_state : int, Generator or None, default=None
        Seed; the same seed gives the same data.

    Returns
    -------
    Dataset
        ``X`` of shape (n_series, length), ``y`` the class of each series.

    Raises
    ------
    InvalidParameterError
        If a size is not a positive int or ``n_classes`` is not in 1-4.

    Notes
    -----
    Each series is driven by standard normal noise times a gain drawn from
    U(0.5, 2); the per-series z-score removes the gain, so classes differ only
    in the position and sharpness of their spectral peak.

    Examples
    --------
    >>> data = make_ar2(8, 50, random_state=0)
    >>> data.X.shape, sorted(set(data.y.tolist()))
    ((8, 50), [0, 1, 2, 3])
    """
    _check_sizes("make_ar2", n_series, length, n_classes, len(AR2_CLASSES))
    rng = _rng(random_state)
    y = _balanced_labels(n_series, n_classes, rng)
    params = np.array(AR2_CLASSES[:n_classes])[y]
    a1 = 2.0 * params[:, 0] * np.cos(params[:, 1])
    a2 = -(params[:, 0] ** 2)
    gain = rng.uniform(0.5, 2.0, size=n_series)
    total = length + _AR2_BURN_IN
    noise = rng.standard_normal((n_series, total)) * gain[:, None]
    x = np.zeros((n_series, total))
    for t in range(2, total):  # vectorised over series; T is small
        x[:, t] = a1 * x[:, t - 1] + a2 * x[:, t - 2] + noise[:, t]
    return Dataset(_zscore(x[:, _AR2_BURN_IN:]), y, "ar2")


def make_nonlinear(
    n_series: int = 400,
    length: int = 300,
    *,
    n_classes: int = 4,
    noise: float = 0.02,
    random_state: int | np.random.Generator | None = None,
) -> Dataset:
    """Generate logistic-map series, one growth rate per class, z-scored.

    Parameters
    ----------
    n_series : int, default=400
        Number of series (balanced classes).
    length : int, default=300
        Samples per series after a burn-in of 100 iterations.
    n_classes : int, default=4
        How many of :data:`LOGISTIC_RATES` to use (1-4).
    noise : float, default=0.02
        Standard deviation of the observation noise added before the z-score.
    random_state : int, Generator or None, default=None
        Seed.

    Returns
    -------
    Dataset
        ``X`` of shape (n_series, length) and the class of each series.

    Raises
    ------
    InvalidParameterError
        If a size is out of range or ``noise`` is negative.

    Examples
    --------
    >>> make_nonlinear(4, 20, random_state=0).X.shape
    (4, 20)
    """
    _check_sizes("make_nonlinear", n_series, length, n_classes, len(LOGISTIC_RATES))
    check_number(noise, "noise", "make_nonlinear", minimum=0.0)
    rng = _rng(random_state)
    y = _balanced_labels(n_series, n_classes, rng)
    rate = np.array(LOGISTIC_RATES[:n_classes])[y]
    x = rng.uniform(0.2, 0.8, size=n_series)
    out = np.empty((n_series, length))
    for t in range(_AR2_BURN_IN + length):
        x = rate * x * (1.0 - x)
        if t >= _AR2_BURN_IN:
            out[:, t - _AR2_BURN_IN] = x
    out += noise * rng.standard_normal(out.shape)
    return Dataset(_zscore(out), y, "nonlinear")


def oracle_labels(
    X: NDArray[np.float64], centres: NDArray[np.float64] = PROFILE_CENTRES
) -> NDArray[np.int64]:
    """Assign each row to its nearest true centre (the oracle clustering).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Profiles.
    centres : ndarray of shape (n_centres, n_features), default=PROFILE_CENTRES
        The generating centres.

    Returns
    -------
    ndarray of shape (n_samples,)
        Index of the nearest centre.

    Examples
    --------
    >>> oracle_labels(PROFILE_CENTRES).tolist()
    [0, 1, 2, 3]
    """
    d2 = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return np.asarray(np.argmin(d2, axis=1), dtype=np.int64)


def _profiles_from(y: NDArray[np.int64], spread: float, rng: np.random.Generator) -> NDArray[np.float64]:
    X = PROFILE_CENTRES[y] + spread * rng.standard_normal((y.size, 4))
    X = np.clip(X, 0.0, 100.0)
    total = X.sum(axis=1, keepdims=True)
    return np.asarray(100.0 * X / np.where(total > 0, total, 1.0), dtype=np.float64)


def make_profiles(
    n_samples: int = 1000,
    *,
    spread: float = 20.0,
    random_state: int | np.random.Generator | None = None,
) -> Dataset:
    """Generate four-dimensional colour-energy profiles around colour-dominant centres.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of profiles (balanced over the four centres).
    spread : float, default=20.0
        Standard deviation of the Gaussian noise added to each score, on the 0-100 scale.
    random_state : int, Generator or None, default=None
        Seed.

    Returns
    -------
    Dataset
        ``X`` of shape (n_samples, 4), scores clipped to [0, 100] and renormalised
        to sum to 100; ``y`` the generating centre.

    Raises
    ------
    InvalidParameterError
        If ``n_samples`` < 1 or ``spread`` < 0.

    See Also
    --------
    oracle_labels : the best any clustering can do on this data.

    Examples
    --------
    >>> data = make_profiles(8, spread=5.0, random_state=0)
    >>> bool(np.allclose(data.X.sum(axis=1), 100.0))
    True
    """
    check_number(n_samples, "n_samples", "make_profiles", minimum=1, integer=True)
    check_number(spread, "spread", "make_profiles", minimum=0.0)
    rng = _rng(random_state)
    y = _balanced_labels(n_samples, 4, rng)
    return Dataset(_profiles_from(y, spread, rng), y, "profiles")


def make_drifting_stream(
    n_samples: int = 4000,
    *,
    change_at: int | None = 2000,
    weights_before: tuple[float, ...] = (0.34, 0.33, 0.33, 0.0),
    weights_after: tuple[float, ...] = (0.1, 0.1, 0.1, 0.7),
    spread: float = 8.0,
    random_state: int | np.random.Generator | None = None,
) -> Dataset:
    """Generate a stream of profiles whose class mixture changes at ``change_at``.

    Parameters
    ----------
    n_samples : int, default=4000
        Length of the stream.
    change_at : int or None, default=2000
        Index of the first sample drawn from ``weights_after``; None gives a
        stationary stream drawn from ``weights_before`` only.
    weights_before, weights_after : tuple of 4 floats
        Class probabilities before and after the change (normalised to sum 1).
    spread : float, default=8.0
        Noise standard deviation of each profile score.
    random_state : int, Generator or None, default=None
        Seed.

    Returns
    -------
    Dataset
        ``X`` of shape (n_samples, 4) in stream order and the class of each sample.

    Raises
    ------
    InvalidParameterError
        If a weight vector is not 4 non-negative numbers with a positive sum, or
        ``change_at`` is outside ``[0, n_samples]``.

    Examples
    --------
    >>> stream = make_drifting_stream(100, change_at=50, random_state=0)
    >>> bool((stream.y[:50] != 3).all())
    True
    """
    owner = "make_drifting_stream"
    check_number(n_samples, "n_samples", owner, minimum=1, integer=True)
    check_number(change_at, "change_at", owner, minimum=0, maximum=n_samples, integer=True, allow_none=True)
    check_number(spread, "spread", owner, minimum=0.0)
    probs = []
    for name, w in (("weights_before", weights_before), ("weights_after", weights_after)):
        arr = np.asarray(w, dtype=np.float64)
        if arr.shape != (4,) or not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
            raise InvalidParameterError(
                f"The {name!r} parameter of {owner} must be 4 non-negative class weights with a "
                f"positive sum. Got {w!r} instead."
            )
        probs.append(arr / arr.sum())
    rng = _rng(random_state)
    split = n_samples if change_at is None else change_at
    y = np.concatenate(
        [rng.choice(4, size=split, p=probs[0]), rng.choice(4, size=n_samples - split, p=probs[1])]
    ).astype(np.int64)
    return Dataset(_profiles_from(y, spread, rng), y, "stream")


def load_trace() -> Dataset:
    """Load the UCR "Trace" set bundled with tslearn (train and test together).

    Returns
    -------
    Dataset
        ``X`` of shape (200, 275), four classes relabelled ``0 .. 3``.

    Raises
    ------
    MissingDependencyError
        If tslearn is not installed.

    Notes
    -----
    tslearn ships ``Trace.npz`` inside its wheel (``tslearn/.cached_datasets``),
    so this works offline; scaleforge ships no copy of the data.
    """
    from scaleforge.errors import MissingDependencyError

    try:
        from tslearn.datasets import CachedDatasets
    except ImportError as exc:
        raise MissingDependencyError("load_trace needs tslearn: pip install 'scaleforge[workloads]'") from exc
    parts: Any = CachedDatasets().load_dataset("Trace")
    X = np.concatenate([parts[0][:, :, 0], parts[2][:, :, 0]]).astype(np.float64)
    raw = np.concatenate([parts[1], parts[3]])
    _, y = np.unique(raw, return_inverse=True)
    return Dataset(X, y.astype(np.int64), "trace")


def load_digits() -> Dataset:
    """Load scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes).

    Returns
    -------
    Dataset
        ``X`` of shape (1797, 64) (pixel intensities 0-16), ``y`` the digit.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch: Any = _sk_load_digits()
    return Dataset(
        np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64), "digits"
    )
