"""Probabilistic heads on the FNO: Gaussian NLL, generative (CRPS / energy score), deep ensemble.

The last-layer Laplace head (LUNO-LA) lives in :mod:`.laplace` and is
re-exported here, so ``heads`` names all four:

==========  ==========================  ==========================================
head        class                       uncertainty from
==========  ==========================  ==========================================
gaussian    :class:`GaussianOperator`   a second output channel, trained by (β-)NLL
crps        :class:`GenerativeOperator` a latent noise input, trained by CRPS or ES
ensemble    :class:`EnsembleOperator`   M independently seeded Gaussian FNOs
laplace     :class:`LaplaceOperator`    exact Bayesian last layer, evidence-fitted
==========  ==========================  ==========================================
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.operators.base import ProbabilisticOperator, _Scaler
from scaleforge.workloads.operators.training import TrainConfig, TrainResult, train_module

if TYPE_CHECKING:
    from typing import Self

    import torch

    from scaleforge.workloads.operators.fno import FNO

# LaplaceOperator is also reachable here (module __getattr__); it is defined in .laplace.
__all__ = [
    "EnsembleOperator",
    "FNOOperator",
    "GaussianOperator",
    "GenerativeOperator",
    "member_checkpoint_dir",
]

logger = logging.getLogger(__name__)

_MIN_VAR = 1e-6
_INIT_LOCK = threading.Lock()


def _softplus_var(raw: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.softplus(raw.float()) + _MIN_VAR


class FNOOperator(ProbabilisticOperator):
    """Shared machinery of the FNO-based heads: validation, scaling, batching, training.

    Parameters
    ----------
    width : int, default=32
        Channels of the Fourier layers.
    modes : int, default=12
        Retained Fourier modes per axis.
    depth : int, default=4
        Fourier layers.
    hidden : int, default=128
        Width of the projection MLP (the penultimate features).
    padding : float, default=0.0
        Zero padding per axis as a fraction of the resolution (use ~0.1 for non-periodic data).
    training : TrainConfig, optional
        Optimisation options; default ``TrainConfig()``.
    random_state : int, default=0
        Seed of initialisation, shuffling and noise.
    """

    _out_channels = 1
    _latent = 0

    def __init__(
        self,
        *,
        width: int = 32,
        modes: int = 12,
        depth: int = 4,
        hidden: int = 128,
        padding: float = 0.0,
        training: TrainConfig | None = None,
        random_state: int = 0,
    ) -> None:
        self.width = width
        self.modes = modes
        self.depth = depth
        self.hidden = hidden
        self.padding = padding
        self.training = training
        self.random_state = random_state

    # ------------------------------------------------------------------ hooks for heads
    def _loss(self) -> Any:
        raise NotImplementedError

    def _validate_params(self) -> None:
        owner = type(self).__name__
        for name in ("width", "modes", "depth", "hidden"):
            check_number(getattr(self, name), name, owner, minimum=1, integer=True)
        check_number(self.padding, "padding", owner, minimum=0.0, maximum=1.0)
        check_number(self.random_state, "random_state", owner, integer=True, minimum=0)
        if self.training is not None and not isinstance(self.training, TrainConfig):
            raise InvalidParameterError(
                f"The 'training' parameter of {owner} must be a TrainConfig or None. "
                f"Got {type(self.training).__name__} instead."
            )

    @property
    def config_(self) -> TrainConfig:
        """The effective :class:`TrainConfig`."""
        return self.training if self.training is not None else TrainConfig()

    def _build(self, dim: int) -> FNO:
        import torch

        from scaleforge.workloads.operators.fno import FNO

        with _INIT_LOCK:  # seeding + construction must not interleave with another thread's
            torch.manual_seed(self.random_state)
            net = FNO(
                dim,
                out_channels=self._out_channels,
                width=self.width,
                modes=self.modes,
                depth=self.depth,
                hidden=self.hidden,
                latent=self._latent,
                padding=self.padding,
            )
        warm = getattr(self, "_warm_state", None)
        if warm is not None:  # warm start (active learning): begin from a previous model's weights
            net.load_state_dict(warm)
            self._warm_state = None
        return net

    def _signature(self) -> dict[str, Any]:
        return {"head": self.head, "dim": self.dim_, "resolution": list(self.resolution_), **self._arch()}

    def _prepare(
        self, x: ArrayLike, y: ArrayLike, x_val: ArrayLike | None, y_val: ArrayLike | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        import torch

        self._validate_params()
        xa, ya = self._check_xy(x, y)
        if (x_val is None) != (y_val is None):
            raise InvalidParameterError("Pass both x_val and y_val, or neither (then 10 % of x is held out).")
        if x_val is None or y_val is None:
            if xa.shape[0] < 4:
                raise InvalidParameterError(
                    f"{type(self).__name__}.fit needs at least 4 samples to hold out validation data; "
                    f"got {xa.shape[0]}. Pass x_val and y_val explicitly."
                )
            rng = np.random.default_rng(self.random_state)
            perm = rng.permutation(xa.shape[0])
            n_val = max(1, xa.shape[0] // 10)
            xv, yv = xa[perm[:n_val]], ya[perm[:n_val]]
            xa, ya = xa[perm[n_val:]], ya[perm[n_val:]]
        else:
            xv, yv = self._check_xy(x_val, y_val, "_val")
            if xv.shape[1:] != xa.shape[1:]:
                raise InvalidParameterError(
                    f"Validation fields have grid {xv.shape[1:]} but training fields {xa.shape[1:]}; "
                    "use one resolution for fitting."
                )
        self.dim_ = xa.ndim - 1
        self.resolution_ = tuple(int(s) for s in xa.shape[1:])
        self.x_scaler_ = _Scaler.fit(xa)
        self.y_scaler_ = _Scaler.fit(ya)

        def t(a: NDArray[np.float64], sc: _Scaler) -> torch.Tensor:
            return torch.as_tensor((a - sc.mean) / sc.std, dtype=torch.float32)

        return t(xa, self.x_scaler_), t(ya, self.y_scaler_), t(xv, self.x_scaler_), t(yv, self.y_scaler_)

    def _train(
        self,
        net: torch.nn.Module,
        tensors: tuple[torch.Tensor, ...],
        checkpoint_dir: str | os.PathLike[str] | None,
        resume: bool,
    ) -> TrainResult:
        import time

        from scaleforge.workloads.operators.telemetry import record_epoch

        xt, yt, xv, yv = tensors
        clock = [time.perf_counter()]

        def on_epoch(epoch: int, train_loss: float, val_loss: float) -> None:
            now = time.perf_counter()
            record_epoch(self.head, train_loss, now - clock[0])
            clock[0] = now

        result = train_module(
            net,
            self._loss(),
            xt,
            yt,
            xv,
            yv,
            config=self.config_,
            seed=self.random_state,
            signature=self._signature(),
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            on_epoch=on_epoch,
        )
        self.history_ = result.history
        self.train_seconds_ = result.seconds
        return result

    def _inputs(self, x: ArrayLike) -> torch.Tensor:
        import torch

        xa = self._check_fields(x)
        return torch.as_tensor((xa - self.x_scaler_.mean) / self.x_scaler_.std, dtype=torch.float32)

    def _batches(self, xt: torch.Tensor, batch_size: int = 64) -> list[torch.Tensor]:
        return [xt[i : i + batch_size] for i in range(0, xt.shape[0], batch_size)]

    def _unscale(
        self, mean: torch.Tensor, std: torch.Tensor
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        m = mean.double().numpy() * self.y_scaler_.std + self.y_scaler_.mean
        s = std.double().numpy() * self.y_scaler_.std
        return m, s

    def _scalers_state(self) -> dict[str, Any]:
        return {
            "x_scaler": [self.x_scaler_.mean, self.x_scaler_.std],
            "y_scaler": [self.y_scaler_.mean, self.y_scaler_.std],
        }

    def _set_scalers(self, state: dict[str, Any]) -> None:
        self.x_scaler_ = _Scaler(*(float(v) for v in state["x_scaler"]))
        self.y_scaler_ = _Scaler(*(float(v) for v in state["y_scaler"]))

    def _load_net(self, state: dict[str, Any], key: str = "net") -> FNO:
        net = self._build(self.dim_)
        try:
            net.load_state_dict(state[key])
        except (RuntimeError, KeyError) as exc:
            raise InvalidParameterError(
                f"The saved weights do not fit a {type(self).__name__} with {self._arch()} "
                f"(checkpoint from another architecture?): {exc}"
            ) from exc
        net.eval()
        return net

    def _get_state(self) -> dict[str, Any]:
        return {"net": self.net_.state_dict(), **self._scalers_state()}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._set_scalers(state)
        self.net_ = self._load_net(state)


# ---------------------------------------------------------------------- losses (module level: picklable for DDP)
def gaussian_nll_loss(
    module: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor, beta: float = 0.0
) -> torch.Tensor:
    """β-NLL of a two-channel output (mean, raw variance); β=0 is the plain Gaussian NLL.

    Parameters
    ----------
    module : torch.nn.Module
    xb, yb : torch.Tensor
    beta : float, default=0.0
        Seitzer et al. (2022): weight each point's NLL by ``stop_grad(var**beta)``.

    Returns
    -------
    torch.Tensor
    """
    pred: torch.Tensor = module(xb)
    mean, var = pred.float()[..., 0], _softplus_var(pred[..., 1])
    nll = 0.5 * (var.log() + (yb - mean) ** 2 / var)
    if beta:
        nll = nll * var.detach() ** beta
    loss: torch.Tensor = nll.mean()
    return loss


class _BetaNLL:
    """Picklable ``loss_fn`` with a fixed β; validation uses the plain NLL.

    β-NLL reweights points by the current variance, so its value is not
    comparable across epochs; early stopping compares the (proper) NLL instead.
    """

    def __init__(self, beta: float) -> None:
        self.beta = beta

    def __call__(self, module: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return gaussian_nll_loss(module, xb, yb, self.beta)

    def validation(self, module: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """The plain Gaussian NLL, used for early stopping."""
        return gaussian_nll_loss(module, xb, yb, 0.0)


class _SampleScore:
    """Picklable CRPS / energy-score loss of a latent-noise generator with ``m`` samples per input."""

    def __init__(self, kind: str, m: int, latent: int) -> None:
        self.kind, self.m, self.latent = kind, m, latent

    def __call__(self, module: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        import torch

        b = xb.shape[0]
        xr = xb.repeat_interleave(self.m, dim=0)
        z = torch.randn(b * self.m, self.latent, device=xb.device)
        s = module(xr, z).float()[..., 0].reshape(b, self.m, *xb.shape[1:])
        return sample_score(s, yb, self.kind)


def sample_score(samples: torch.Tensor, y: torch.Tensor, kind: str = "crps") -> torch.Tensor:
    """Fair CRPS (pointwise) or energy score (whole field) of ``samples`` (b, m, *grid) at ``y``.

    Parameters
    ----------
    samples : torch.Tensor of shape (batch, m, *grid)
    y : torch.Tensor of shape (batch, *grid)
    kind : {"crps", "energy"}

    Returns
    -------
    torch.Tensor
        Scalar mean score (a strictly proper scoring rule, lower is better).
    """
    m = samples.shape[1]
    if kind == "crps":
        term1 = (samples - y.unsqueeze(1)).abs().mean(dim=1)
        term2 = (samples.unsqueeze(1) - samples.unsqueeze(2)).abs().sum(dim=(1, 2)) / (2 * m * (m - 1))
        return (term1 - term2).mean()
    flat = samples.reshape(samples.shape[0], m, -1)
    scale = flat.shape[-1] ** 0.5
    term1 = (flat - y.reshape(y.shape[0], 1, -1)).norm(dim=-1).mean(dim=1)
    d = (flat.unsqueeze(1) - flat.unsqueeze(2)).pow(2).sum(-1).clamp_min(1e-12).sqrt()
    term2 = d.sum(dim=(1, 2)) / (2 * m * (m - 1))
    es: torch.Tensor = ((term1 - term2) / scale).mean()
    return es


# ---------------------------------------------------------------------- 1. Gaussian head
class GaussianOperator(FNOOperator):
    """Heteroscedastic Gaussian head: the FNO outputs a mean and a variance per point.

    Trained with the Gaussian negative log-likelihood (β-NLL with ``beta``;
    ``beta=0`` is the plain NLL). ``sample`` draws independent points.

    Parameters
    ----------
    beta : float, default=0.5
        β of β-NLL (Seitzer et al., ICLR 2022), which keeps the mean accurate.
    **kwargs
        See :class:`FNOOperator`.

    Examples
    --------
    >>> from scaleforge.workloads.operators import GaussianOperator, TrainConfig
    >>> model = GaussianOperator(width=16, modes=8, training=TrainConfig(epochs=50))  # doctest: +SKIP
    >>> mean, std = model.fit(x, y).predict(x_test)  # doctest: +SKIP
    """

    head = "gaussian"
    _out_channels = 2

    def __init__(
        self,
        *,
        beta: float = 0.5,
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
        self.beta = beta

    def _loss(self) -> Any:
        return _BetaNLL(float(self.beta))

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
        """Train the network; see :meth:`ProbabilisticOperator.fit`."""
        check_number(self.beta, "beta", type(self).__name__, minimum=0.0, maximum=1.0)
        tensors = self._prepare(x, y, x_val, y_val)
        self.net_ = self._build(self.dim_)
        self._train(self.net_, tensors, checkpoint_dir, resume)
        return self

    def _moments(self, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        means, stds = [], []
        with torch.no_grad():
            for xb in self._batches(xt):
                out = self.net_(xb).float()
                means.append(out[..., 0])
                stds.append(_softplus_var(out[..., 1]).sqrt())
        return torch.cat(means), torch.cat(stds)

    def predict(self, x: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Predictive mean and std; see :meth:`ProbabilisticOperator.predict`."""
        return self._unscale(*self._moments(self._inputs(x)))

    def sample(self, x: ArrayLike, n: int, *, random_state: int | None = None) -> NDArray[np.float64]:
        """Independent Gaussian draws per point; see :meth:`ProbabilisticOperator.sample`."""
        check_number(n, "n", f"{type(self).__name__}.sample", minimum=1, integer=True)
        mean, std = self.predict(x)
        rng = np.random.default_rng(random_state)
        noise = rng.standard_normal((mean.shape[0], n, *mean.shape[1:]))
        return mean[:, None] + std[:, None] * noise


# ---------------------------------------------------------------------- 2. generative head
class GenerativeOperator(FNOOperator):
    """Generative head trained with a strictly proper scoring rule (Bülte et al., TMLR 2025).

    A latent vector ``z ~ N(0, I)`` is broadcast over the grid and fed to the
    projection, so each draw is a whole, spatially coherent field. Training
    minimises the fair CRPS (pointwise) or the energy score (whole field) of
    ``n_train_samples`` draws per input; ``predict`` reports the mean and std
    of ``n_predict_samples`` draws.

    Parameters
    ----------
    score : {"crps", "energy"}, default="crps"
    latent : int, default=16
    n_train_samples : int, default=4
    n_predict_samples : int, default=64
    **kwargs
        See :class:`FNOOperator`.
    """

    head = "crps"
    _arch_params = (*FNOOperator._arch_params, "latent")

    def __init__(
        self,
        *,
        score: str = "crps",
        latent: int = 16,
        n_train_samples: int = 4,
        n_predict_samples: int = 64,
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
        self.score = score
        self.latent = latent
        self.n_train_samples = n_train_samples
        self.n_predict_samples = n_predict_samples

    @property
    def _latent(self) -> int:  # type: ignore[override]
        return int(self.latent)

    def _loss(self) -> Any:
        return _SampleScore(self.score, int(self.n_train_samples), int(self.latent))

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
        """Train the generator; see :meth:`ProbabilisticOperator.fit`."""
        owner = type(self).__name__
        check_choice(self.score, "score", owner, ("crps", "energy"))
        check_number(self.latent, "latent", owner, minimum=1, integer=True)
        check_number(self.n_train_samples, "n_train_samples", owner, minimum=2, integer=True)
        check_number(self.n_predict_samples, "n_predict_samples", owner, minimum=2, integer=True)
        tensors = self._prepare(x, y, x_val, y_val)
        self.net_ = self._build(self.dim_)
        self._train(self.net_, tensors, checkpoint_dir, resume)
        return self

    def _draw(self, xt: torch.Tensor, n: int, seed: int | None) -> torch.Tensor:
        import torch

        gen = torch.Generator().manual_seed(seed if seed is not None else self.random_state + 1)
        out = []
        with torch.no_grad():
            for xb in self._batches(xt, max(1, 256 // n)):
                b = xb.shape[0]
                z = torch.randn(b * n, self.latent, generator=gen)
                s = self.net_(xb.repeat_interleave(n, dim=0), z).float()[..., 0]
                out.append(s.reshape(b, n, *xb.shape[1:]))
        return torch.cat(out)

    def predict(self, x: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mean and std of ``n_predict_samples`` draws; see :meth:`ProbabilisticOperator.predict`."""
        s = self._draw(self._inputs(x), int(self.n_predict_samples), None)
        return self._unscale(s.mean(dim=1), s.std(dim=1).clamp_min(1e-6))

    def sample(self, x: ArrayLike, n: int, *, random_state: int | None = None) -> NDArray[np.float64]:
        """Whole-field draws; see :meth:`ProbabilisticOperator.sample`."""
        check_number(n, "n", f"{type(self).__name__}.sample", minimum=1, integer=True)
        s = self._draw(self._inputs(x), n, random_state).double().numpy()
        return s * self.y_scaler_.std + self.y_scaler_.mean


# ---------------------------------------------------------------------- 3. deep ensemble
def member_checkpoint_dir(checkpoint_dir: str | os.PathLike[str], index: int) -> Path:
    """The checkpoint directory of ensemble member ``index`` inside ``checkpoint_dir``.

    Parameters
    ----------
    checkpoint_dir : path-like
        The ensemble's checkpoint directory.
    index : int
        Member index (0-based).

    Returns
    -------
    Path
        ``checkpoint_dir / f"member{index}"``.
    """
    return Path(checkpoint_dir) / f"member{index}"


def _fit_member(
    task: tuple[int, int],
    *,
    params: dict[str, Any],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    x_val: NDArray[np.float64],
    y_val: NDArray[np.float64],
    checkpoint_dir: str | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train member ``index`` with ``seed`` (a task of ``scaleforge.map``) and return its state."""
    index, seed = task
    member = GaussianOperator(**{**params, "random_state": seed})
    ckpt = member_checkpoint_dir(checkpoint_dir, index) if checkpoint_dir is not None else None
    member.fit(x, y, x_val=x_val, y_val=y_val, checkpoint_dir=ckpt, resume=resume and ckpt is not None)
    return {"state": member._get_state(), "history": member.history_}


class EnsembleOperator(FNOOperator):
    """Deep ensemble (Lakshminarayanan et al., 2017) of M independently seeded Gaussian FNOs.

    Members train in parallel as tasks of :func:`scaleforge.map` (local
    processes by default, Ray or Dask by settings). The prediction is the
    moment-matched mixture: mean of means, and ``mean(σ² + μ²) − μ̄²``.

    Parameters
    ----------
    n_members : int, default=5
    beta : float, default=0.5
        β-NLL of each member.
    executor : str or None, default=None
        Executor name for ``scaleforge.map`` (None: settings / context).
    **kwargs
        See :class:`FNOOperator`.
    """

    head = "ensemble"

    def __init__(
        self,
        *,
        n_members: int = 5,
        beta: float = 0.5,
        executor: str | None = None,
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
        self.n_members = n_members
        self.beta = beta
        self.executor = executor

    def _member_params(self) -> dict[str, Any]:
        p = {k: v for k, v in self.get_params().items() if k not in ("n_members", "executor")}
        return p

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
        """Train the members in parallel; see :meth:`ProbabilisticOperator.fit`.

        With ``checkpoint_dir``, member ``k`` writes its atomic checkpoints to
        ``checkpoint_dir/member{k}`` (see :func:`member_checkpoint_dir`);
        ``resume=True`` resumes every member from its own subdirectory (members
        without a checkpoint start fresh). Each member's checkpoint records its
        seed, so a directory of another ensemble is refused.
        """
        import time

        owner = type(self).__name__
        if resume and checkpoint_dir is None:
            raise InvalidParameterError(
                f"{owner}.fit(resume=True) needs the checkpoint_dir the members were checkpointed to. "
                "Pass checkpoint_dir=..., or resume=False."
            )
        check_number(self.n_members, "n_members", owner, minimum=1, integer=True)
        check_number(self.beta, "beta", owner, minimum=0.0, maximum=1.0)
        self._validate_params()
        xa, ya = self._check_xy(x, y)
        if x_val is None or y_val is None:
            rng = np.random.default_rng(self.random_state)
            perm = rng.permutation(xa.shape[0])
            n_val = max(1, xa.shape[0] // 10)
            xv, yv = xa[perm[:n_val]], ya[perm[:n_val]]
            xa, ya = xa[perm[n_val:]], ya[perm[n_val:]]
        else:
            xv, yv = self._check_xy(x_val, y_val, "_val")
        self.dim_ = xa.ndim - 1
        self.resolution_ = tuple(int(s) for s in xa.shape[1:])
        seeds = [self.random_state + 1000 * k for k in range(int(self.n_members))]
        start = time.perf_counter()
        ckpt = os.fspath(checkpoint_dir) if checkpoint_dir is not None else None
        results = _map_members(
            seeds, self._member_params(), xa, ya, xv, yv, self.executor, checkpoint_dir=ckpt, resume=resume
        )
        self.train_seconds_ = time.perf_counter() - start
        self.members_ = [
            self._member_from_state(r["state"], seed) for r, seed in zip(results, seeds, strict=True)
        ]
        self.history_ = results[0]["history"]
        return self

    def _member_from_state(self, state: dict[str, Any], seed: int) -> GaussianOperator:
        member = GaussianOperator(**{**self._member_params(), "random_state": seed})
        member.dim_ = self.dim_
        member.resolution_ = self.resolution_
        member._set_state(state)
        return member

    def _member_moments(self, x: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        self._check_fields(x)
        preds = [m.predict(x) for m in self.members_]
        means = np.stack([p[0] for p in preds])
        stds = np.stack([p[1] for p in preds])
        return means, stds

    def predict(self, x: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mixture mean and std; see :meth:`ProbabilisticOperator.predict`."""
        means, stds = self._member_moments(x)
        mean = means.mean(axis=0)
        var = (stds**2 + means**2).mean(axis=0) - mean**2
        return mean, np.sqrt(np.maximum(var, 1e-12))

    def sample(self, x: ArrayLike, n: int, *, random_state: int | None = None) -> NDArray[np.float64]:
        """Draw a member uniformly, then a Gaussian field from it; see :meth:`ProbabilisticOperator.sample`."""
        check_number(n, "n", f"{type(self).__name__}.sample", minimum=1, integer=True)
        means, stds = self._member_moments(x)
        rng = np.random.default_rng(random_state)
        pick = rng.integers(0, means.shape[0], size=(means.shape[1], n))
        rows = np.arange(means.shape[1])[:, None]
        mu, sd = means[pick, rows], stds[pick, rows]
        return mu + sd * rng.standard_normal(mu.shape)

    def _get_state(self) -> dict[str, Any]:
        return {f"member{k}": m._get_state() for k, m in enumerate(self.members_)}

    def _set_state(self, state: dict[str, Any]) -> None:
        if len(state) != int(self.n_members):
            raise InvalidParameterError(
                f"The saved ensemble has {len(state)} members but n_members={self.n_members}."
            )
        seeds = [self.random_state + 1000 * k for k in range(int(self.n_members))]
        self.members_ = [self._member_from_state(state[f"member{k}"], s) for k, s in enumerate(seeds)]


def _map_members(
    seeds: list[int],
    params: dict[str, Any],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    xv: NDArray[np.float64],
    yv: NDArray[np.float64],
    executor: str | None,
    *,
    checkpoint_dir: str | None = None,
    resume: bool = False,
) -> list[dict[str, Any]]:
    import importlib

    tasks = list(enumerate(seeds))
    extra: dict[str, Any] = {"checkpoint_dir": checkpoint_dir, "resume": resume}
    try:
        sf_map = importlib.import_module("scaleforge.compute.map").map
    except ModuleNotFoundError:  # the compute layer is not installed yet: train serially
        logger.warning("scaleforge.compute.map is not available; training ensemble members serially")
        return [_fit_member(t, params=params, x=x, y=y, x_val=xv, y_val=yv, **extra) for t in tasks]
    training = params.get("training") or TrainConfig()
    if training.threads is None:  # members share the cores: one torch thread each
        from dataclasses import replace

        params = {**params, "training": replace(training, threads=1)}
    kwargs: dict[str, Any] = {
        "params": params,
        "x": x,
        "y": y,
        "x_val": xv,
        "y_val": yv,
        "progress": False,
        **extra,
    }
    if executor is not None:
        kwargs["executor"] = executor
    from scaleforge.errors import TaskError

    try:
        return list(sf_map(_fit_member, tasks, **kwargs))
    except TaskError as exc:
        cause = exc.__cause__
        if isinstance(cause, InvalidParameterError):  # bad input of a member: say so, not "task failed"
            member = exc.index if exc.index is not None else "?"
            raise InvalidParameterError(f"Ensemble member {member}: {cause}") from exc
        raise


def __getattr__(name: str) -> Any:
    # LaplaceOperator lives in .laplace, which imports this module; resolve it lazily.
    if name == "LaplaceOperator":
        from scaleforge.workloads.operators.laplace import LaplaceOperator

        return LaplaceOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
