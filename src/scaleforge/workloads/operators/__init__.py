"""Probabilistic neural operators: FNO surrogates with calibrated uncertainty.

Train a Fourier neural operator once on PDE solutions, then predict a new
solution field with a per-point standard deviation in milliseconds, and use
that uncertainty to choose which simulations to run next::

    from scaleforge.workloads import pde, operators

    data = pde.generate("darcy", n=1200, resolution=32)
    model = operators.train(data, head="laplace")        # or gaussian, crps, ensemble
    mean, std = model.predict(kappa[None])
    fields = model.sample(kappa[None], 16)

Names load lazily so that importing this package does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "ActiveLearningResult": "scaleforge.workloads.operators.active",
    "BayesianLinearRegression": "scaleforge.workloads.operators.laplace",
    "EnsembleOperator": "scaleforge.workloads.operators.heads",
    "GPBaseline": "scaleforge.workloads.operators.baselines",
    "GaussianOperator": "scaleforge.workloads.operators.heads",
    "GenerativeOperator": "scaleforge.workloads.operators.heads",
    "LaplaceOperator": "scaleforge.workloads.operators.laplace",
    "ProbabilisticOperator": "scaleforge.workloads.operators.base",
    "RidgeBaseline": "scaleforge.workloads.operators.baselines",
    "TrainConfig": "scaleforge.workloads.operators.training",
    "acquire": "scaleforge.workloads.operators.active",
    "evaluate": "scaleforge.workloads.operators.experiment",
    "load_split": "scaleforge.workloads.operators.data",
    "make_operator": "scaleforge.workloads.operators.base",
    "run_active_learning": "scaleforge.workloads.operators.active",
    "run_demo": "scaleforge.workloads.operators.pipeline",
    "run_experiment": "scaleforge.workloads.operators.experiment",
    "search": "scaleforge.workloads.operators.tuning",
    "train": "scaleforge.workloads.operators.experiment",
}

__all__ = [
    "ActiveLearningResult",
    "BayesianLinearRegression",
    "EnsembleOperator",
    "GPBaseline",
    "GaussianOperator",
    "GenerativeOperator",
    "LaplaceOperator",
    "ProbabilisticOperator",
    "RidgeBaseline",
    "TrainConfig",
    "acquire",
    "evaluate",
    "load_split",
    "make_operator",
    "run_active_learning",
    "run_demo",
    "run_experiment",
    "search",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scaleforge.workloads.operators' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from scaleforge.workloads.operators.active import ActiveLearningResult, acquire, run_active_learning
    from scaleforge.workloads.operators.base import ProbabilisticOperator, make_operator
    from scaleforge.workloads.operators.baselines import GPBaseline, RidgeBaseline
    from scaleforge.workloads.operators.data import load_split
    from scaleforge.workloads.operators.experiment import evaluate, run_experiment, train
    from scaleforge.workloads.operators.heads import EnsembleOperator, GaussianOperator, GenerativeOperator
    from scaleforge.workloads.operators.laplace import BayesianLinearRegression, LaplaceOperator
    from scaleforge.workloads.operators.pipeline import run_demo
    from scaleforge.workloads.operators.training import TrainConfig
    from scaleforge.workloads.operators.tuning import search
