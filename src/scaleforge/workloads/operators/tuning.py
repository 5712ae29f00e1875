"""Optional hyperparameter search with Optuna over width, modes and learning rate.

Trials are proposed in batches with Optuna's ask/tell interface and each batch
runs in parallel as tasks of :func:`scaleforge.map`, so the same search uses
local processes or a Ray/Dask cluster by settings.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_number
from scaleforge.errors import MissingDependencyError
from scaleforge.workloads.operators.base import make_operator
from scaleforge.workloads.operators.training import TrainConfig

__all__ = ["search"]

logger = logging.getLogger(__name__)


def _trial(
    params: dict[str, Any],
    *,
    head: str,
    base: dict[str, Any],
    training: TrainConfig,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    x_val: NDArray[np.float64],
    y_val: NDArray[np.float64],
) -> float:
    """Train one configuration and return its validation relative L2 (a task of ``scaleforge.map``)."""
    from scaleforge.workloads.operators.metrics import rel_l2

    cfg = replace(training, lr=float(params["lr"]), threads=training.threads or 1)
    arch = {**base, "width": int(params["width"]), "modes": int(params["modes"])}
    model = make_operator(head, **arch, training=cfg)
    model.fit(x, y, x_val=x_val, y_val=y_val)
    mean, _ = model.predict(x_val)
    return rel_l2(y_val, mean)


def search(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    x_val: NDArray[np.float64],
    y_val: NDArray[np.float64],
    *,
    head: str = "laplace",
    n_trials: int = 8,
    parallel: int = 2,
    widths: tuple[int, ...] = (16, 24, 32),
    max_modes: int = 16,
    lr_range: tuple[float, float] = (3e-4, 1e-2),
    base: dict[str, Any] | None = None,
    training: TrainConfig | None = None,
    seed: int = 0,
    executor: Any = None,
) -> dict[str, Any]:
    """Search width, modes and learning rate by validation relative L2 (Optuna TPE).

    Parameters
    ----------
    x, y, x_val, y_val : ndarray
        Training and validation fields.
    head : str, default="laplace"
    n_trials : int, default=8
    parallel : int, default=2
        Trials proposed and run at once (one ``scaleforge.map`` per batch).
    widths : tuple of int, default=(16, 24, 32)
    max_modes : int, default=16
        Upper bound of ``modes`` (also capped by the grid).
    lr_range : (float, float), default=(3e-4, 1e-2)
        Log-uniform learning-rate range.
    base : dict, optional
        Fixed architecture arguments (``depth``, ``hidden``, ``padding``).
    training : TrainConfig, optional
        Training options of every trial (its ``lr`` is searched).
    seed : int, default=0
    executor : str or Executor, optional

    Returns
    -------
    dict
        ``best_params``, ``best_value`` and ``trials`` (params and value of each).

    Raises
    ------
    MissingDependencyError
        If Optuna is not installed.
    """
    try:
        import optuna
    except ImportError as exc:
        raise MissingDependencyError("Hyperparameter search needs Optuna: pip install optuna") from exc
    from scaleforge.compute.map import map as sf_map

    check_number(n_trials, "n_trials", "search", minimum=1, integer=True)
    check_number(parallel, "parallel", "search", minimum=1, integer=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid_cap = min(np.asarray(x).shape[1:]) // 2
    hi_modes = max(2, min(max_modes, grid_cap))
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    cfg = training if training is not None else TrainConfig(epochs=20)
    done = 0
    history: list[dict[str, Any]] = []
    while done < n_trials:
        batch = [study.ask() for _ in range(min(parallel, n_trials - done))]
        params = [
            {
                "width": t.suggest_categorical("width", list(widths)),
                "modes": t.suggest_int("modes", 2, hi_modes),
                "lr": t.suggest_float("lr", lr_range[0], lr_range[1], log=True),
            }
            for t in batch
        ]
        values = sf_map(
            _trial,
            params,
            executor=executor,
            progress=False,
            head=head,
            base=dict(base or {}),
            training=cfg,
            x=x,
            y=y,
            x_val=x_val,
            y_val=y_val,
        )
        for t, p, v in zip(batch, params, values, strict=True):
            study.tell(t, float(v))
            history.append({**p, "value": float(v)})
            logger.info("trial %s: val rel L2 %.4f", p, v)
        done += len(batch)
    return {"best_params": dict(study.best_params), "best_value": float(study.best_value), "trials": history}
