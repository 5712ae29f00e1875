"""Baselines every operator is compared with: linear ridge regression and exact GP regression.

Both treat a field as one long vector: the input field flattened is the
feature vector, and each output grid point is a target sharing the model.
Both return ``(mean, std)`` like a :class:`ProbabilisticOperator`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import cho_factor, cho_solve

from scaleforge.errors import InvalidParameterError, NotFittedError

__all__ = ["GPBaseline", "RidgeBaseline"]


def _check(x: ArrayLike, name: str, owner: str) -> NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2 or a.shape[0] == 0:
        raise InvalidParameterError(
            f"The {name!r} argument of {owner} must have shape (n_samples, *grid) with n_samples >= 1. Got {a.shape}."
        )
    if not np.all(np.isfinite(a)):
        raise InvalidParameterError(f"The {name!r} argument of {owner} contains NaN or infinite values.")
    return a


class RidgeBaseline:
    """Linear ridge regression from the flattened input field to the output field.

    ``alpha`` is chosen by leave-one-out cross-validation (scikit-learn
    ``RidgeCV``); the std is each grid point's training residual std.

    Parameters
    ----------
    alphas : sequence of float, default=logspace(-4, 4, 17)
    """

    def __init__(self, alphas: ArrayLike | None = None) -> None:
        self.alphas = alphas

    def fit(self, x: ArrayLike, y: ArrayLike) -> RidgeBaseline:
        """Fit on fields ``x``, ``y`` of shape (n, *grid).

        Parameters
        ----------
        x, y : array-like

        Returns
        -------
        self
        """
        from sklearn.linear_model import RidgeCV

        xa, ya = _check(x, "x", "RidgeBaseline"), _check(y, "y", "RidgeBaseline")
        if xa.shape[0] != ya.shape[0]:
            raise InvalidParameterError(
                f"RidgeBaseline.fit got {xa.shape[0]} inputs but {ya.shape[0]} outputs."
            )
        alphas = np.logspace(-4, 4, 17) if self.alphas is None else np.asarray(self.alphas, dtype=np.float64)
        self.in_shape_, self.out_shape_ = xa.shape[1:], ya.shape[1:]
        xf, yf = xa.reshape(xa.shape[0], -1), ya.reshape(ya.shape[0], -1)
        self.model_ = RidgeCV(alphas=alphas).fit(xf, yf)
        resid = yf - self.model_.predict(xf)
        self.std_ = np.maximum(resid.std(axis=0), 1e-12)
        return self

    def predict(self, x: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mean and (homoscedastic per point) std for fields ``x``.

        Parameters
        ----------
        x : array-like of shape (n, *grid)

        Returns
        -------
        mean, std : ndarray of shape (n, *grid_out)
        """
        if not hasattr(self, "model_"):
            raise NotFittedError("RidgeBaseline is not fitted yet; call fit(x, y) first.")
        xa = _check(x, "x", "RidgeBaseline")
        if xa.shape[1:] != self.in_shape_:
            raise InvalidParameterError(
                f"RidgeBaseline was fitted on grid {self.in_shape_}; got {xa.shape[1:]}. Resample the fields."
            )
        mean = self.model_.predict(xa.reshape(xa.shape[0], -1)).reshape(xa.shape[0], *self.out_shape_)
        return mean, np.broadcast_to(self.std_.reshape(self.out_shape_), mean.shape).copy()


class GPBaseline:
    """Exact Gaussian-process regression with an RBF kernel on the flattened input field.

    All output grid points share the kernel ``k(x, x') = exp(−|x − x'|² / (2 ℓ²))``
    and the noise ratio; each has its own signal variance, fitted in closed form.
    ``ℓ²`` is ``length_factor ×`` the median squared distance between training
    inputs; ``length_factor`` and the noise ratio are chosen by maximising the
    marginal likelihood summed over outputs.

    Parameters
    ----------
    length_factors : sequence of float, default=(0.25, 0.5, 1.0, 2.0)
    noise_ratios : sequence of float, default=logspace(-8, -1, 15)

    Attributes
    ----------
    length2_ : float
    noise_ratio_ : float
    log_evidence_ : float
    """

    def __init__(
        self, length_factors: ArrayLike | None = None, noise_ratios: ArrayLike | None = None
    ) -> None:
        self.length_factors = length_factors
        self.noise_ratios = noise_ratios

    def fit(self, x: ArrayLike, y: ArrayLike) -> GPBaseline:
        """Fit on fields ``x``, ``y`` of shape (n, *grid).

        Parameters
        ----------
        x, y : array-like

        Returns
        -------
        self
        """
        xa, ya = _check(x, "x", "GPBaseline"), _check(y, "y", "GPBaseline")
        n = xa.shape[0]
        if ya.shape[0] != n or n < 2:
            raise InvalidParameterError(
                f"GPBaseline.fit needs >= 2 paired samples; got {n} and {ya.shape[0]}."
            )
        self.in_shape_, self.out_shape_ = xa.shape[1:], ya.shape[1:]
        xf = xa.reshape(n, -1)
        yf = ya.reshape(n, -1)
        self.y_mean_ = yf.mean(axis=0)
        yc = yf - self.y_mean_
        d2 = self._sqdist(xf, xf)
        med = float(np.median(d2[np.triu_indices(n, 1)]))
        factors = (0.25, 0.5, 1.0, 2.0) if self.length_factors is None else self.length_factors
        ratios = np.logspace(-8, -1, 15) if self.noise_ratios is None else self.noise_ratios
        p = yc.shape[1]
        best: tuple[float, float, float] | None = None
        for f in np.asarray(factors, dtype=np.float64):
            k = np.exp(-d2 / (2.0 * f * med))
            for r in np.asarray(ratios, dtype=np.float64):
                try:
                    c = cho_factor(k + r * np.eye(n), lower=True)
                except np.linalg.LinAlgError:
                    continue
                alpha = cho_solve(c, yc)
                scale = np.maximum(np.sum(yc * alpha, axis=0) / n, 1e-300)
                logdet = 2.0 * float(np.sum(np.log(np.diag(c[0]))))
                ev = (
                    -0.5 * n * float(np.sum(np.log(scale)))
                    - 0.5 * p * logdet
                    - 0.5 * n * p * (1 + math.log(2 * math.pi))
                )
                if best is None or ev > best[0]:
                    best = (ev, float(f * med), float(r))
        if best is None:
            raise InvalidParameterError(
                "GPBaseline could not factor the kernel matrix; pass larger noise_ratios."
            )
        self.log_evidence_, self.length2_, self.noise_ratio_ = best
        k = np.exp(-d2 / (2.0 * self.length2_))
        self.chol_ = cho_factor(k + self.noise_ratio_ * np.eye(n), lower=True)
        self.alpha_ = cho_solve(self.chol_, yc)
        self.scale_ = np.maximum(np.sum(yc * self.alpha_, axis=0) / n, 1e-300)
        self.x_train_ = xf
        return self

    @staticmethod
    def _sqdist(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
        d2 = np.sum(a**2, axis=1)[:, None] + np.sum(b**2, axis=1)[None, :] - 2.0 * a @ b.T
        out: NDArray[np.float64] = np.maximum(d2, 0.0)
        return out

    def predict(self, x: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Posterior predictive mean and std (including noise) for fields ``x``.

        Parameters
        ----------
        x : array-like of shape (n, *grid)

        Returns
        -------
        mean, std : ndarray of shape (n, *grid_out)
        """
        if not hasattr(self, "alpha_"):
            raise NotFittedError("GPBaseline is not fitted yet; call fit(x, y) first.")
        xa = _check(x, "x", "GPBaseline")
        if xa.shape[1:] != self.in_shape_:
            raise InvalidParameterError(
                f"GPBaseline was fitted on grid {self.in_shape_}; got {xa.shape[1:]}. Resample the fields."
            )
        xf = xa.reshape(xa.shape[0], -1)
        ks = np.exp(-self._sqdist(xf, self.x_train_) / (2.0 * self.length2_))
        mean = ks @ self.alpha_ + self.y_mean_
        v = cho_solve(self.chol_, ks.T)
        reduced = np.maximum(1.0 + self.noise_ratio_ - np.sum(ks.T * v, axis=0), 1e-12)
        std = np.sqrt(reduced[:, None] * self.scale_[None, :])
        shape = (xa.shape[0], *self.out_shape_)
        return mean.reshape(shape), std.reshape(shape)
