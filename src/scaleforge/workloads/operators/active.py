"""Active learning: spend simulations where the operator is most uncertain.

A pool of unlabelled Darcy permeability fields κ is drawn cheaply (a
thresholded Gaussian random field, no solve). Each round trains a
probabilistic operator on the labelled fields, scores every pool field by its
summed predictive variance, "simulates" the ``k`` highest-scoring ones with
the PDE workload's finite-volume solver through a cached
:func:`scaleforge.map`, and retrains from the previous weights (warm start).
The same loop with random acquisition, from the same initial fields and with
the same budget, is the control.
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

__all__ = ["ActiveLearningResult", "darcy_pool", "run_active_learning", "simulate_darcy"]

logger = logging.getLogger(__name__)

STRATEGIES = ("variance", "random")


@dataclass
class ActiveLearningResult:
    """Test error against the number of labelled fields, per strategy.

    Attributes
    ----------
    labels : list of int
        Labelled fields after each round (shared by the strategies).
    errors : dict of str to list of float
        Test relative L2 of the mean after each round, per strategy.
    seconds : float
    """

    labels: list[int] = field(default_factory=list)
    errors: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ratio(self) -> float:
        """Final error of variance acquisition divided by that of random acquisition."""
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
    model_params: dict[str, Any] | None = None,
    training: TrainConfig | None = None,
    executor: Any = None,
    on_round: Callable[[str, int, float], None] | None = None,
) -> ActiveLearningResult:
    """Compare variance acquisition with random acquisition at equal label budgets.

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
    result = ActiveLearningResult()
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
        srng = np.random.default_rng(seed + 1)
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
            if strategy == "variance":
                _, std = model.predict(pool[rest])
                score = np.sum(std.reshape(std.shape[0], -1) ** 2, axis=1)
                pick = rest[np.argsort(score)[::-1][:batch]]
            else:
                pick = srng.choice(rest, size=batch, replace=False)
            labelled = np.concatenate([labelled, pick])
        result.errors[strategy] = errors
        result.labels = counts
    result.seconds = time.perf_counter() - start
    return result
