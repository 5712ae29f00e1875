"""Active learning: spend simulations where the operator is most uncertain.

A pool of unlabelled Darcy permeability fields κ is drawn cheaply (a
thresholded Gaussian random field, no solve). Each round trains a
probabilistic operator on the labelled fields, scores every pool field by its
summed *epistemic* predictive variance (what more data can reduce), selects a
diverse batch of ``k`` fields, "simulates" them with the PDE workload's
finite-volume solver through a cached :func:`scaleforge.map`, and retrains
from the previous weights (warm start). The same loop with random
acquisition, from the same initial fields and with the same budget, is the
control.

Why epistemic: the total predictive variance of the heteroscedastic and
Laplace heads is dominated by the aleatoric (noise) part, which labelling does
not reduce; acquiring by it picks noisy fields, not informative ones.

Batch diversity: the ``k`` fields are chosen greedily, each score damped by
``1 − max k(x, x_picked)`` with an RBF kernel on the input fields (median
heuristic length scale), so a batch holds no near-duplicates. (Greedy exact
Bayesian updates of the Laplace last layer, the textbook alternative, were
tried and do not diversify here: the fitted noise dominates the epistemic
variance, so one fantasised observation of a field barely lowers the
variance of its duplicate.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_choice, check_number
from scaleforge.workloads.operators.base import ProbabilisticOperator, make_operator
from scaleforge.workloads.operators.metrics import rel_l2
from scaleforge.workloads.operators.training import TrainConfig

__all__ = [
    "ACQUISITIONS",
    "ActiveLearningResult",
    "acquire",
    "darcy_pool",
    "run_active_learning",
    "simulate_darcy",
]

logger = logging.getLogger(__name__)

STRATEGIES = ("variance", "random")
#: Acquisition functions of :func:`run_active_learning`.
ACQUISITIONS = ("epistemic", "total", "random")


@dataclass
class ActiveLearningResult:
    """Test error against the number of labelled fields, per strategy.

    Attributes
    ----------
    labels : list of int
        Labelled fields after each round (shared by the strategies).
    errors : dict of str to list of float
        Test relative L2 of the mean after each round, per strategy:
        ``"variance"`` (acquisition by the model's uncertainty, see
        ``acquisition``) and ``"random"``.
    seconds : float
    acquisition : str
        The acquisition function of the ``"variance"`` strategy.
    diverse : bool
        Whether its batches were selected for diversity.
    """

    labels: list[int] = field(default_factory=list)
    errors: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    acquisition: str = "epistemic"
    diverse: bool = True

    @property
    def ratio(self) -> float:
        """Final error of uncertainty-driven acquisition divided by that of random acquisition."""
        return self.errors["variance"][-1] / self.errors["random"][-1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Returns
        -------
        dict
        """
        return {
            "labels": self.labels,
            "errors": self.errors,
            "al_vs_random": self.ratio,
            "seconds": self.seconds,
            "acquisition": self.acquisition,
            "diverse": self.diverse,
        }


def darcy_pool(n: int, resolution: int = 32, *, seed: int = 0, start: int = 0) -> NDArray[np.float64]:
    """Permeability fields κ of Darcy samples ``start .. start+n-1`` without solving.

    They are exactly the inputs ``pde.generate("darcy", ...)`` would produce for
    the same ``seed`` and indices.

    Parameters
    ----------
    n : int
    resolution : int, default=32
    seed, start : int, default=0

    Returns
    -------
    ndarray of shape (n, resolution, resolution)
    """
    from scaleforge.workloads import pde

    check_number(n, "n", "darcy_pool", minimum=1, integer=True)
    p = pde.DATASETS["darcy"]
    out = np.empty((n, resolution, resolution))
    for i in range(n):
        rng = np.random.default_rng([seed, start + i])
        g = pde.grf_2d(rng, resolution, alpha=p["alpha"], tau=p["tau"])
        out[i] = np.where(g >= 0.0, p["kappa_high"], p["kappa_low"])
    return out


def _solve(kappa: NDArray[np.float64]) -> NDArray[np.float64]:
    from scaleforge.workloads import pde

    return np.asarray(pde.solve_darcy_fv(kappa), dtype=np.float64)


_CACHED_SOLVE: Callable[..., Any] | None = None


def _cached_solve() -> Callable[..., Any]:
    global _CACHED_SOLVE
    if _CACHED_SOLVE is None:
        from scaleforge.cache.decorators import cached

        _CACHED_SOLVE = cached(_solve)
    return _CACHED_SOLVE


def simulate_darcy(
    kappas: NDArray[np.float64], *, executor: Any = None, cache: bool = True
) -> NDArray[np.float64]:
    """Solve Darcy flow for each κ in parallel through a cached :func:`scaleforge.map`.

    Parameters
    ----------
    kappas : ndarray of shape (n, s, s)
    executor : str or Executor, optional
    cache : bool, default=True
        Reuse solutions of fields already simulated (by content).

    Returns
    -------
    ndarray of shape (n, s, s)
    """
    from scaleforge.compute.map import map as sf_map

    fn = _cached_solve() if cache else _solve
    return np.stack(sf_map(fn, list(kappas), executor=executor, progress=False))


def _epistemic_scores(
    model: ProbabilisticOperator, x: NDArray[np.float64], acquisition: str
) -> NDArray[np.float64]:
    """Summed variance per field: epistemic (what labels reduce) or total predictive."""
    if acquisition == "total":
        _, std = model.predict(x)
        return np.asarray(np.sum(std.reshape(std.shape[0], -1) ** 2, axis=1), dtype=np.float64)
    epistemic = getattr(model, "predict_epistemic", None)
    if epistemic is not None:
        sd = np.asarray(epistemic(x))
        return np.asarray(np.sum(sd.reshape(sd.shape[0], -1) ** 2, axis=1), dtype=np.float64)
    from scaleforge.workloads.operators.heads import EnsembleOperator

    if isinstance(model, EnsembleOperator):
        means, _ = model._member_moments(x)
        var = means.var(axis=0)  # disagreement of the members' means
        return np.asarray(np.sum(var.reshape(var.shape[0], -1), axis=1), dtype=np.float64)
    from scaleforge.errors import InvalidParameterError

    raise InvalidParameterError(
        f"acquisition='epistemic' needs a head that separates epistemic from aleatoric variance "
        f"(laplace or ensemble); the {type(model).__name__} head does not. "
        f"Use head='laplace' or 'ensemble', or acquisition='total'."
    )


def _greedy_kernel(score: NDArray[np.float64], x: NDArray[np.float64], k: int) -> NDArray[np.int64]:
    """Greedy top-k where each score is damped by ``1 - max RBF similarity`` to the fields picked."""
    flat = x.reshape(x.shape[0], -1)
    sq = np.sum(flat**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T, 0.0)
    positive = d2[d2 > 0]
    scale = float(np.median(positive)) if positive.size else 1.0
    sim = np.exp(-d2 / scale)
    damp = np.ones(x.shape[0])
    picked: list[int] = []
    for _ in range(k):
        adjusted = score * damp
        adjusted[picked] = -np.inf
        j = int(np.argmax(adjusted))
        picked.append(j)
        damp = np.minimum(damp, 1.0 - sim[j])
    return np.asarray(picked, dtype=np.int64)


def acquire(
    model: ProbabilisticOperator,
    x: NDArray[np.float64],
    k: int,
    *,
    acquisition: str = "epistemic",
    diverse: bool = True,
) -> NDArray[np.int64]:
    """Indices of the ``k`` candidate fields to simulate next.

    Parameters
    ----------
    model : ProbabilisticOperator
        The fitted operator.
    x : ndarray of shape (n_candidates, *grid)
        Unlabelled candidate inputs.
    k : int
        Batch size (``1 <= k <= n_candidates``).
    acquisition : {"epistemic", "total"}, default="epistemic"
        Score fields by their summed epistemic variance (Laplace: ``φᵀΣφ``;
        ensemble: variance of the member means) or by the total predictive
        variance (epistemic + aleatoric, any head).
    diverse : bool, default=True
        Select the batch greedily, damping each score by ``1 − max`` RBF
        similarity to the fields already picked, so that it holds no
        near-duplicates; False takes the top-``k`` scores.

    Returns
    -------
    ndarray of int, shape (k,)
        Positions in ``x``, in order of selection.

    Raises
    ------
    InvalidParameterError
        For an unknown acquisition, a bad ``k``, or ``"epistemic"`` with a head
        that has no epistemic variance.
    """
    check_choice(acquisition, "acquisition", "acquire", ("epistemic", "total"))
    check_number(k, "k", "acquire", minimum=1, maximum=int(x.shape[0]), integer=True)
    score = _epistemic_scores(model, x, acquisition)
    if diverse:
        return _greedy_kernel(score, x, k)
    return np.asarray(np.argsort(score)[::-1][:k], dtype=np.int64)


def _fit(
    head: str,
    params: dict[str, Any],
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    previous: ProbabilisticOperator | None,
) -> ProbabilisticOperator:
    model = make_operator(head, **params)
    if previous is not None and hasattr(previous, "net_"):
        model._warm_state = previous.net_.state_dict()  # type: ignore[attr-defined]
    return model.fit(x, y)


def run_active_learning(
    *,
    head: str = "laplace",
    pool_size: int = 600,
    initial: int = 100,
    batch: int = 50,
    rounds: int = 4,
    resolution: int = 32,
    n_test: int = 200,
    seed: int = 0,
    acquisition: str = "epistemic",
    diverse: bool = True,
    model_params: dict[str, Any] | None = None,
    training: TrainConfig | None = None,
    executor: Any = None,
    on_round: Callable[[str, int, float], None] | None = None,
) -> ActiveLearningResult:
    """Compare uncertainty-driven acquisition with random acquisition at equal label budgets.

    Parameters
    ----------
    head : str, default="laplace"
        Operator head (see :func:`make_operator`).
    pool_size : int, default=600
        Unlabelled candidate fields.
    initial : int, default=100
        Randomly chosen labelled fields to start from (the same for both strategies).
    batch : int, default=50
        Fields acquired per round.
    rounds : int, default=4
        Acquisition rounds; the final model has ``initial + rounds * batch`` labels.
    resolution : int, default=32
    n_test : int, default=200
        Test fields (indices from :data:`~scaleforge.workloads.operators.data.TEST_START`).
    seed : int, default=0
    acquisition : {"epistemic", "total", "random"}, default="epistemic"
        Score of the ``"variance"`` strategy (see :func:`acquire`): summed
        epistemic variance (needs the laplace or ensemble head), summed total
        predictive variance, or ``"random"`` (then both strategies are random
        with different streams: a null experiment for the noise level).
    diverse : bool, default=True
        Select each acquired batch for diversity (see :func:`acquire`).
    model_params : dict, optional
        Head constructor arguments (architecture).
    training : TrainConfig, optional
        Per-round training options.
    executor : str or Executor, optional
        For the simulations.
    on_round : callable, optional
        ``on_round(strategy, n_labels, test_error)`` after each round.

    Returns
    -------
    ActiveLearningResult
    """
    owner = "run_active_learning"
    for name, value in (("pool_size", pool_size), ("initial", initial), ("batch", batch), ("n_test", n_test)):
        check_number(value, name, owner, minimum=1, integer=True)
    check_number(rounds, "rounds", owner, minimum=1, integer=True)
    if initial + rounds * batch > pool_size:
        from scaleforge.errors import InvalidParameterError

        raise InvalidParameterError(
            f"run_active_learning needs pool_size >= initial + rounds * batch = {initial + rounds * batch}; "
            f"got pool_size={pool_size}. Enlarge the pool or lower rounds/batch."
        )
    check_choice(head, "head", owner, ("gaussian", "crps", "ensemble", "laplace"))
    check_choice(acquisition, "acquisition", owner, ACQUISITIONS)
    if acquisition == "epistemic" and head in ("gaussian", "crps"):
        from scaleforge.errors import InvalidParameterError

        raise InvalidParameterError(
            f"run_active_learning: acquisition='epistemic' needs head='laplace' or 'ensemble' "
            f"(the {head} head has no epistemic variance). Pass acquisition='total' or change the head."
        )
    from scaleforge.workloads.operators.data import TEST_START, load_split

    start = time.perf_counter()
    pool = darcy_pool(pool_size, resolution, seed=seed)
    test = load_split(
        "darcy", n_test, resolution, seed=seed, start=TEST_START, executor=executor, progress=False
    )
    params = {**(model_params or {}), "random_state": seed}
    if training is not None:
        params["training"] = training
    rng = np.random.default_rng(seed)
    init = rng.choice(pool_size, size=initial, replace=False)
    result = ActiveLearningResult(acquisition=acquisition, diverse=bool(diverse))
    labels_cache: dict[int, NDArray[np.float64]] = {}
    first: tuple[ProbabilisticOperator, float] | None = None

    def label(idx: NDArray[np.int64]) -> NDArray[np.float64]:
        todo = [int(i) for i in idx if int(i) not in labels_cache]
        if todo:
            for i, u in zip(todo, simulate_darcy(pool[todo], executor=executor), strict=True):
                labels_cache[i] = u
        return np.stack([labels_cache[int(i)] for i in idx])

    for strategy in STRATEGIES:
        labelled = np.array(init)
        srng = np.random.default_rng(seed + 1 if strategy == "random" else seed + 2)
        model: ProbabilisticOperator | None = None
        errors: list[float] = []
        counts: list[int] = []
        for r in range(rounds + 1):
            if r == 0 and first is not None:  # both strategies start from the same model
                model, err = first
            else:
                model = _fit(head, params, pool[labelled], label(labelled), model)
                mean, _ = model.predict(test.x)
                err = rel_l2(test.y, mean)
                if r == 0:
                    first = (model, err)
            errors.append(err)
            counts.append(int(labelled.size))
            logger.info("active learning %s: %d labels, test rel L2 %.4f", strategy, labelled.size, err)
            if on_round is not None:
                on_round(strategy, int(labelled.size), err)
            if r == rounds:
                break
            rest = np.setdiff1d(np.arange(pool_size), labelled)
            if strategy == "variance" and acquisition != "random":
                pick = rest[acquire(model, pool[rest], batch, acquisition=acquisition, diverse=diverse)]
            else:
                pick = srng.choice(rest, size=batch, replace=False)
            labelled = np.concatenate([labelled, pick])
        result.errors[strategy] = errors
        result.labels = counts
    result.seconds = time.perf_counter() - start
    return result
