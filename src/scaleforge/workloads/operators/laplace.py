"""Last-layer linearised Laplace for neural operators (LUNO-LA, Magnani et al., ICML 2025).

The FNO's projection ends in a linear map ``u(x) = φ(x)ᵀ w`` of penultimate
features ``φ``. With a Gaussian prior ``w ~ N(0, α⁻¹ I)`` and Gaussian noise,
the posterior over ``w`` given the features pooled over every grid point of
every field is *exact* Bayesian linear regression, and the prior precision
``α`` and noise precision ``β`` are fitted by maximising its closed-form
evidence (MacKay's fixed point). The predictive variance
``φ(x)ᵀ Σ φ(x) + noise(x)`` varies in space, and posterior weight draws give
spatially coherent function samples: a function-valued Gaussian process.

With ``noise="heteroscedastic"`` the network also predicts a per-point noise
shape ``s(x)²`` (β-NLL) and the likelihood is ``N(φᵀw, s(x)²/β)``; the evidence
is then that of the whitened regression.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import ComputeError, InvalidParameterError
from scaleforge.workloads.operators.heads import FNOOperator, _BetaNLL, _softplus_var
from scaleforge.workloads.operators.training import TrainConfig

if TYPE_CHECKING:
    from typing import Self

    import torch

__all__ = ["BayesianLinearRegression", "LaplaceOperator", "mse_loss"]


def mse_loss(module: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Mean squared error of a one-channel output.

    Parameters
    ----------
    module : torch.nn.Module
    xb, yb : torch.Tensor

    Returns
    -------
    torch.Tensor
    """
    pred: torch.Tensor = module(xb)
    out: torch.Tensor = ((pred.float()[..., 0] - yb) ** 2).mean()
    return out


class BayesianLinearRegression:
    """Exact Bayesian linear regression with evidence-maximised α and β.

    Model: ``y = Φ w + ε``, ``w ~ N(0, α⁻¹ I)``, ``ε ~ N(0, β⁻¹ I)``. Works from
    the sufficient statistics ``G = ΦᵀΦ``, ``b = Φᵀy``, ``yᵀy`` and ``N``, so
    millions of pooled grid points cost one D×D accumulation.

    Parameters
    ----------
    alpha, beta : float or None, default=None
        Fix the prior / noise precision; None fits it by evidence maximisation.
    max_iter : int, default=200
    tol : float, default=1e-8
        Relative change of α and β that stops the fixed-point iteration.

    Attributes
    ----------
    mean_ : ndarray of shape (D,)
        Posterior mean ``β Σ b``.
    cov_ : ndarray of shape (D, D)
        Posterior covariance ``Σ = (α I + β G)⁻¹``.
    alpha_, beta_ : float
    log_evidence_ : float
        ``log p(y | α, β)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> phi = rng.normal(size=(500, 3)); w = np.array([1.0, -2.0, 0.5])
    >>> blr = BayesianLinearRegression().fit(phi, phi @ w + 0.1 * rng.normal(size=500))
    >>> bool(np.allclose(blr.mean_, w, atol=0.02)), round(float(1 / np.sqrt(blr.beta_)), 1)
    (True, 0.1)
    """

    def __init__(
        self, *, alpha: float | None = None, beta: float | None = None, max_iter: int = 200, tol: float = 1e-8
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, phi: ArrayLike, y: ArrayLike) -> Self:
        """Fit on a design matrix ``phi`` (N, D) and targets ``y`` (N,).

        Parameters
        ----------
        phi : array-like of shape (N, D)
        y : array-like of shape (N,)

        Returns
        -------
        self
        """
        p = np.asarray(phi, dtype=np.float64)
        t = np.asarray(y, dtype=np.float64)
        if p.ndim != 2 or t.shape != (p.shape[0],):
            raise InvalidParameterError(
                f"BayesianLinearRegression.fit needs phi of shape (N, D) and y of shape (N,). Got {p.shape} and {t.shape}."
            )
        return self.fit_stats(p.T @ p, p.T @ t, float(t @ t), p.shape[0])

    def fit_stats(self, gram: NDArray[np.float64], phi_y: NDArray[np.float64], yty: float, n: int) -> Self:
        """Fit from sufficient statistics ``ΦᵀΦ``, ``Φᵀy``, ``yᵀy`` and ``N``.

        Parameters
        ----------
        gram : ndarray of shape (D, D)
        phi_y : ndarray of shape (D,)
        yty : float
        n : int

        Returns
        -------
        self
        """
        owner = "BayesianLinearRegression"
        check_number(self.alpha, "alpha", owner, minimum=0, exclusive_minimum=True, allow_none=True)
        check_number(self.beta, "beta", owner, minimum=0, exclusive_minimum=True, allow_none=True)
        if not (np.all(np.isfinite(gram)) and np.all(np.isfinite(phi_y)) and math.isfinite(yty)):
            raise InvalidParameterError("BayesianLinearRegression got NaN or infinite features or targets.")
        lam, vec = np.linalg.eigh(0.5 * (gram + gram.T))
        lam = np.clip(lam, 0.0, None)
        bv = vec.T @ phi_y  # b in the eigenbasis
        d = lam.size
        alpha = float(self.alpha) if self.alpha is not None else 1.0
        beta = float(self.beta) if self.beta is not None else max(n / max(yty, 1e-300), 1e-12)
        for _ in range(int(self.max_iter)):
            mv = beta * bv / (alpha + beta * lam)
            res2 = max(yty - 2.0 * float(mv @ bv) + float(np.sum(lam * mv**2)), 1e-300)
            gamma = float(np.sum(beta * lam / (alpha + beta * lam)))
            new_alpha = gamma / max(float(mv @ mv), 1e-300) if self.alpha is None else alpha
            new_beta = max(n - gamma, 1e-12) / res2 if self.beta is None else beta
            done = abs(new_alpha - alpha) <= self.tol * alpha and abs(new_beta - beta) <= self.tol * beta
            alpha, beta = max(new_alpha, 1e-12), new_beta
            if done:
                break
        if not (math.isfinite(alpha) and math.isfinite(beta)):
            raise ComputeError("Evidence maximisation diverged; the features may be degenerate.")
        eig = alpha + beta * lam
        mv = beta * bv / eig
        res2 = max(yty - 2.0 * float(mv @ bv) + float(np.sum(lam * mv**2)), 0.0)
        self.alpha_, self.beta_ = alpha, beta
        self.mean_ = vec @ mv
        self.cov_ = (vec / eig) @ vec.T
        self.log_evidence_ = float(
            0.5 * d * math.log(alpha)
            + 0.5 * n * math.log(beta)
            - 0.5 * beta * res2
            - 0.5 * alpha * float(mv @ mv)
            - 0.5 * float(np.sum(np.log(eig)))
            - 0.5 * n * math.log(2.0 * math.pi)
        )
        self.n_ = n
        return self

    def predict(self, phi: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Posterior predictive mean and epistemic variance ``φᵀΣφ`` per row.

        Parameters
        ----------
        phi : array-like of shape (M, D)

        Returns
        -------
        mean, var : ndarray of shape (M,)
            Add ``1 / beta_`` to ``var`` for the noisy-observation variance.
        """
        p = np.asarray(phi, dtype=np.float64)
        return p @ self.mean_, np.sum((p @ self.cov_) * p, axis=1)


class LaplaceOperator(FNOOperator):
    """LUNO-LA: an FNO with an exact Bayesian last layer and evidence-fitted precisions.

    The network is first trained as usual (β-NLL with a noise channel, or MSE);
    then the last linear layer of the mean is replaced by the posterior of a
    Bayesian linear regression on the penultimate features pooled over every
    grid point of the ``calibrate_on`` fields.

    Parameters
    ----------
    noise : {"heteroscedastic", "homoscedastic"}, default="heteroscedastic"
        Whether the network also predicts a per-point noise shape.
    calibrate_on : {"validation", "train", "all"}, default="validation"
        Fields whose features condition the last layer. Held-out fields give
        a noise level that reflects generalisation error rather than the
        (smaller) training residual.
    beta_nll : float, default=0.5
        β of the β-NLL used to train the noise channel.
    **kwargs
        See :class:`FNOOperator`.

    Attributes
    ----------
    blr_ : BayesianLinearRegression
        The last-layer posterior (``alpha_``, ``beta_``, ``log_evidence_``).
    """

    head = "laplace"

    def __init__(
        self,
        *,
        noise: str = "heteroscedastic",
        calibrate_on: str = "validation",
        beta_nll: float = 0.5,
        width: int = 32,
        modes: int = 12,
        depth: int = 4,
        hidden: int = 128,
        padding: float = 0.0,
        training: TrainConfig | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            width=width,
            modes=modes,
            depth=depth,
            hidden=hidden,
            padding=padding,
            training=training,
            random_state=random_state,
        )
        self.noise = noise
        self.calibrate_on = calibrate_on
        self.beta_nll = beta_nll

    _arch_params = (*FNOOperator._arch_params, "noise")

    @property
    def _out_channels(self) -> int:  # type: ignore[override]
        return 2 if self.noise == "heteroscedastic" else 1

    def _loss(self) -> Any:
        return _BetaNLL(float(self.beta_nll)) if self.noise == "heteroscedastic" else mse_loss

    def fit(
        self,
        x: ArrayLike,
        y: ArrayLike,
        *,
        x_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> Self:
        """Train the network, then condition the last layer; see :meth:`ProbabilisticOperator.fit`."""
        owner = type(self).__name__
        check_choice(self.noise, "noise", owner, ("heteroscedastic", "homoscedastic"))
        check_choice(self.calibrate_on, "calibrate_on", owner, ("validation", "train", "all"))
        check_number(self.beta_nll, "beta_nll", owner, minimum=0.0, maximum=1.0)
        tensors = self._prepare(x, y, x_val, y_val)
        self.net_ = self._build(self.dim_)
        self._train(self.net_, tensors, checkpoint_dir, resume)
        xt, yt, xv, yv = tensors
        if self.calibrate_on == "validation":
            xc, yc = xv, yv
        elif self.calibrate_on == "train":
            xc, yc = xt, yt
        else:
            import torch

            xc, yc = torch.cat([xt, xv]), torch.cat([yt, yv])
        self._condition(xc, yc)
        return self

    def _design(self, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features with a bias column (points, D) and the noise shape s(x)² (points,)."""
        import torch

        feats = self.net_.features(xb).double()
        flat = feats.reshape(-1, feats.shape[-1])
        phi = torch.cat([flat, torch.ones(flat.shape[0], 1, dtype=flat.dtype)], dim=1)
        if self.noise == "heteroscedastic":
            raw = self.net_.proj2(feats.float())[..., 1]
            shape2 = _softplus_var(raw).double().reshape(-1)
        else:
            shape2 = torch.ones(flat.shape[0], dtype=torch.float64)
        return phi, shape2

    def _condition(self, xc: torch.Tensor, yc: torch.Tensor) -> None:
        import torch

        d = self.hidden + 1
        gram = np.zeros((d, d))
        phi_y = np.zeros(d)
        yty, n = 0.0, 0
        with torch.no_grad():
            for xb, yb in zip(self._batches(xc, 32), self._batches(yc, 32), strict=True):
                phi, shape2 = self._design(xb)
                w = shape2.rsqrt()
                pw = (phi * w[:, None]).numpy()
                yw = (yb.double().reshape(-1) * w).numpy()
                gram += pw.T @ pw
                phi_y += pw.T @ yw
                yty += float(yw @ yw)
                n += yw.size
        self.blr_ = BayesianLinearRegression().fit_stats(gram, phi_y, yty, n)

    def _moments_scaled(self, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised mean, epistemic variance and noise variance, each (n, *grid)."""
        import torch

        means, epis, noises = [], [], []
        with torch.no_grad():
            for xb in self._batches(xt):
                phi, shape2 = self._design(xb)
                m, v = self.blr_.predict(phi.numpy())
                grid = xb.shape
                means.append(torch.from_numpy(m).reshape(grid))
                epis.append(torch.from_numpy(v).reshape(grid))
                noises.append((shape2 / self.blr_.beta_).reshape(grid))
        return torch.cat(means), torch.cat(epis), torch.cat(noises)

    def predict(self, x: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Posterior predictive mean and std (epistemic + noise); see :meth:`ProbabilisticOperator.predict`."""
        mean, epi, noise = self._moments_scaled(self._inputs(x))
        return self._unscale(mean, (epi + noise).sqrt())

    def predict_epistemic(self, x: ArrayLike) -> NDArray[np.float64]:
        """Standard deviation of the mean function alone (``sqrt(φᵀΣφ)``), in output units.

        Parameters
        ----------
        x : array-like of shape (n_samples, *grid)

        Returns
        -------
        ndarray
        """
        _, epi, _ = self._moments_scaled(self._inputs(x))
        return np.asarray(epi.sqrt().numpy() * self.y_scaler_.std, dtype=np.float64)

    def sample(self, x: ArrayLike, n: int, *, random_state: int | None = None) -> NDArray[np.float64]:
        """Function draws: weights from the posterior plus pointwise noise; see :meth:`ProbabilisticOperator.sample`."""
        import torch

        check_number(n, "n", f"{type(self).__name__}.sample", minimum=1, integer=True)
        xt = self._inputs(x)
        rng = np.random.default_rng(random_state)
        chol = np.linalg.cholesky(self.blr_.cov_ + 1e-12 * np.eye(self.blr_.cov_.shape[0]))
        weights = self.blr_.mean_[None] + rng.standard_normal((n, chol.shape[0])) @ chol.T  # (n, D)
        out = []
        with torch.no_grad():
            for xb in self._batches(xt):
                phi, shape2 = self._design(xb)
                f = (phi.numpy() @ weights.T).T.reshape(n, *xb.shape)  # (n, b, *grid)
                noise = np.sqrt(shape2.numpy() / self.blr_.beta_).reshape(xb.shape)
                f = f + noise[None] * rng.standard_normal(f.shape)
                out.append(np.moveaxis(f, 0, 1))
        s = np.concatenate(out)
        return np.asarray(s * self.y_scaler_.std + self.y_scaler_.mean, dtype=np.float64)

    def _get_state(self) -> dict[str, Any]:
        import torch

        return {
            **super()._get_state(),
            "blr_mean": torch.from_numpy(self.blr_.mean_),
            "blr_cov": torch.from_numpy(self.blr_.cov_),
            "blr_scalars": [self.blr_.alpha_, self.blr_.beta_, self.blr_.log_evidence_, self.blr_.n_],
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        blr = BayesianLinearRegression()
        blr.mean_ = state["blr_mean"].double().numpy()
        blr.cov_ = state["blr_cov"].double().numpy()
        if blr.mean_.shape != (self.hidden + 1,):
            raise InvalidParameterError(
                f"The saved last-layer posterior has {blr.mean_.shape[0]} weights; hidden={self.hidden} needs "
                f"{self.hidden + 1} (checkpoint from another architecture?)."
            )
        blr.alpha_, blr.beta_, blr.log_evidence_ = (float(v) for v in state["blr_scalars"][:3])
        blr.n_ = int(state["blr_scalars"][3])
        self.blr_ = blr
