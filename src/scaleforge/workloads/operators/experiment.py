"""Standard experiments: train a head on Burgers or Darcy, evaluate it against the baselines.

``train`` is the one-liner of the API tour (``operators.train(data, head="laplace")``);
``run_experiment`` is what ``scaleforge operators train``, the benchmark and the
demo run: data (cached, parallel) → model → metrics against ridge, GP and a
homoscedastic σ → plots.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_choice
from scaleforge.errors import InvalidParameterError
from scaleforge.workloads.operators import metrics as M
from scaleforge.workloads.operators.base import ProbabilisticOperator, make_operator
from scaleforge.workloads.operators.training import TrainConfig

__all__ = [
    "AL_PRESETS",
    "HEADS",
    "PRESETS",
    "Preset",
    "evaluate",
    "homoscedastic_std",
    "run_experiment",
    "train",
]

logger = logging.getLogger(__name__)

HEADS = ("gaussian", "crps", "ensemble", "laplace")


@dataclass(frozen=True, slots=True)
class Preset:
    """Data size, architecture and training of one standard experiment.

    Attributes
    ----------
    n_train, n_test, resolution : int
    model : dict
        FNO architecture keyword arguments.
    training : TrainConfig
    """

    n_train: int
    n_test: int
    resolution: int
    model: dict[str, Any]
    training: TrainConfig


PRESETS: dict[tuple[str, bool], Preset] = {
    # (dataset, quick)
    ("burgers", False): Preset(
        1000,
        200,
        128,
        {"width": 32, "modes": 16, "depth": 4, "hidden": 128},
        TrainConfig(epochs=60, batch_size=20, lr=2e-3, patience=20),
    ),
    ("burgers", True): Preset(
        200,
        50,
        128,
        {"width": 16, "modes": 12, "depth": 3, "hidden": 64},
        TrainConfig(epochs=30, batch_size=10, lr=3e-3, patience=10),
    ),
    ("darcy", False): Preset(
        1000,
        200,
        32,
        {"width": 32, "modes": 12, "depth": 4, "hidden": 128, "padding": 0.125},
        TrainConfig(epochs=40, batch_size=20, lr=1e-3, patience=15),
    ),
    ("darcy", True): Preset(
        200,
        50,
        32,
        {"width": 16, "modes": 8, "depth": 3, "hidden": 64, "padding": 0.125},
        TrainConfig(epochs=20, batch_size=10, lr=3e-3, patience=10),
    ),
}


#: Active-learning settings by ``quick``: pool, initial labels, batch per round, rounds, model and training.
AL_PRESETS: dict[bool, dict[str, Any]] = {
    False: {
        "pool_size": 600,
        "initial": 100,
        "batch": 50,
        "rounds": 4,
        "resolution": 32,
        "n_test": 200,
        "model_params": {"width": 16, "modes": 8, "depth": 3, "hidden": 64, "padding": 0.125},
        "training": TrainConfig(epochs=25, batch_size=10, lr=3e-3, patience=10),
    },
    True: {
        "pool_size": 160,
        "initial": 30,
        "batch": 20,
        "rounds": 3,
        "resolution": 16,
        "n_test": 50,
        "model_params": {"width": 12, "modes": 6, "depth": 2, "hidden": 32, "padding": 0.125},
        "training": TrainConfig(epochs=15, batch_size=10, lr=5e-3, patience=10),
    },
}


def _xy(data: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if hasattr(data, "inputs") and hasattr(data, "outputs"):
        return np.asarray(data.inputs), np.asarray(data.outputs)
    if isinstance(data, tuple) and len(data) == 2:
        return np.asarray(data[0]), np.asarray(data[1])
    raise InvalidParameterError(
        f"train expects a PDEDataset (pde.generate(...)) or an (x, y) tuple of arrays. Got {type(data).__name__}."
    )


def train(
    data: Any,
    head: str = "laplace",
    *,
    quick: bool = False,
    epochs: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    **params: Any,
) -> ProbabilisticOperator:
    """Train a probabilistic FNO on a PDE data set with the standard architecture.

    Parameters
    ----------
    data : PDEDataset or (x, y)
        Input and output fields; 1D fields use the Burgers preset, 2D the Darcy one.
    head : {"gaussian", "crps", "ensemble", "laplace"}, default="laplace"
    quick : bool, default=False
        Use the small preset (tests, demos).
    epochs : int, optional
        Override the preset's epochs.
    checkpoint_dir : path-like, optional
    resume : bool, default=False
    **params
        Constructor arguments overriding the preset (``width``, ``training``...).

    Returns
    -------
    ProbabilisticOperator

    Examples
    --------
    >>> from scaleforge.workloads import pde, operators  # doctest: +SKIP
    >>> model = operators.train(pde.generate("darcy", n=1200), head="laplace")  # doctest: +SKIP
    >>> mean, std = model.predict(kappa[None])  # doctest: +SKIP
    """
    check_choice(head, "head", "train", HEADS)
    x, y = _xy(data)
    name = "burgers" if x.ndim == 2 else "darcy"
    preset = PRESETS[(name, bool(quick))]
    training = params.pop("training", preset.training)
    if epochs is not None:
        training = replace(training, epochs=epochs)
    model = make_operator(head, **{**preset.model, **params, "training": training})
    return model.fit(x, y, checkpoint_dir=checkpoint_dir, resume=resume)


def homoscedastic_std(
    model: ProbabilisticOperator, x_val: NDArray[np.float64], y_val: NDArray[np.float64]
) -> float:
    """The single σ that maximises the validation likelihood of ``model``'s mean (its RMS error).

    Parameters
    ----------
    model : ProbabilisticOperator
    x_val, y_val : ndarray

    Returns
    -------
    float
    """
    mean, _ = model.predict(x_val)
    return float(np.sqrt(np.mean((y_val - mean) ** 2)))


def evaluate(
    model: ProbabilisticOperator,
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    *,
    x_val: NDArray[np.float64] | None = None,
    y_val: NDArray[np.float64] | None = None,
) -> dict[str, Any]:
    """Accuracy and calibration of ``model`` on test fields.

    Parameters
    ----------
    model : ProbabilisticOperator
    x, y : ndarray
        Test inputs and outputs.
    x_val, y_val : ndarray, optional
        Validation fields; when given, the NLL/CRPS of the model's mean with a
        homoscedastic σ fitted on them is reported as ``homoscedastic_*``.

    Returns
    -------
    dict
        :func:`~scaleforge.workloads.operators.metrics.evaluate_gaussian` keys,
        ``energy`` (energy score of 16 samples on up to 50 fields), ``predict_ms``
        (per field), ``calibration`` (nominal, observed) and the homoscedastic figures.
    """
    t0 = time.perf_counter()
    mean, std = model.predict(x)
    predict_ms = 1000.0 * (time.perf_counter() - t0) / x.shape[0]
    out: dict[str, Any] = M.evaluate_gaussian(y, mean, std)
    k = min(50, x.shape[0])
    out["energy"] = M.energy_score(y[:k], model.sample(x[:k], 16, random_state=0))
    out["predict_ms"] = predict_ms
    nominal, observed = M.calibration_curve(y, mean, std)
    out["calibration"] = [nominal.tolist(), observed.tolist()]
    if x_val is not None and y_val is not None:
        sigma = max(homoscedastic_std(model, x_val, y_val), 1e-12)
        flat = np.full_like(mean, sigma)
        out["homoscedastic_sigma"] = sigma
        out["homoscedastic_nll"] = M.gaussian_nll(y, mean, flat)
        out["homoscedastic_crps"] = M.crps_gaussian(y, mean, flat)
        out["homoscedastic_cov90"] = M.coverage(y, mean, flat, 0.9)
    out["_mean"], out["_std"] = mean, std
    return out


def _baselines(
    x: NDArray[np.float64], y: NDArray[np.float64], xt: NDArray[np.float64], yt: NDArray[np.float64]
) -> dict[str, dict[str, Any]]:
    from scaleforge.workloads.operators.baselines import GPBaseline, RidgeBaseline

    out: dict[str, dict[str, Any]] = {}
    for name, cls in (("ridge", RidgeBaseline), ("gp", GPBaseline)):
        t0 = time.perf_counter()
        mean, std = cls().fit(x, y).predict(xt)
        res: dict[str, Any] = M.evaluate_gaussian(yt, mean, std)
        res["fit_s"] = time.perf_counter() - t0
        nominal, observed = M.calibration_curve(yt, mean, std)
        res["calibration"] = [nominal.tolist(), observed.tolist()]
        out[name] = res
    return out


def run_experiment(
    name: str,
    head: str = "laplace",
    *,
    quick: bool = False,
    epochs: int | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    baselines: bool = True,
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    executor: Any = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Generate data, train a head, evaluate it against the baselines, and write plots.

    Parameters
    ----------
    name : {"burgers", "darcy"}
    head : {"gaussian", "crps", "ensemble", "laplace"}, default="laplace"
    quick : bool, default=False
        Small data and model (about a minute on 2 cores).
    epochs : int, optional
        Override the preset.
    out_dir : path-like, optional
        Where ``model.sfop``, ``checkpoints/`` and the PNG plots go.
    resume : bool, default=False
        Resume training from ``out_dir/checkpoints``.
    baselines : bool, default=True
        Also fit ridge and GP regression on the same data.
    seed : int, default=0
    n_train, n_test : int, optional
        Override the preset's sizes (10 % of the training fields are validation).
    executor, progress
        For data generation (``scaleforge.map``).

    Returns
    -------
    dict
        ``dataset``, ``head``, ``metrics`` (test), ``baselines``, ``train_s``, ``data_cached``,
        ``files`` and the sizes. The scalar test metrics of the model and the baselines are
        also recorded as ``scaleforge_eval_metric`` gauges (see
        :mod:`~scaleforge.workloads.operators.telemetry`).
    """
    from scaleforge.workloads.operators.data import DATASET_NAMES, TEST_START, load_split

    check_choice(name, "name", "run_experiment", DATASET_NAMES)
    check_choice(head, "head", "run_experiment", HEADS)
    if resume and out_dir is None:
        raise InvalidParameterError(
            "resume=True needs out_dir (its checkpoints/ folder is resumed). Pass --out."
        )
    preset = PRESETS[(name, bool(quick))]
    ntr = n_train if n_train is not None else preset.n_train
    nte = n_test if n_test is not None else preset.n_test
    train_split = load_split(name, ntr, preset.resolution, seed=seed, executor=executor, progress=progress)
    test_split = load_split(
        name, nte, preset.resolution, seed=seed, start=TEST_START, executor=executor, progress=progress
    )
    x, y = train_split.x, train_split.y
    n_val = max(1, ntr // 10)
    xv, yv, xtr, ytr = x[:n_val], y[:n_val], x[n_val:], y[n_val:]
    training = preset.training if epochs is None else replace(preset.training, epochs=epochs)
    model = make_operator(head, **preset.model, training=training, random_state=seed)
    out = Path(out_dir) if out_dir is not None else None
    ckpt = out / "checkpoints" if out is not None else None
    t0 = time.perf_counter()
    model.fit(xtr, ytr, x_val=xv, y_val=yv, checkpoint_dir=ckpt, resume=resume)
    train_s = time.perf_counter() - t0
    metrics = evaluate(model, test_split.x, test_split.y, x_val=xv, y_val=yv)
    mean, std = metrics.pop("_mean"), metrics.pop("_std")
    result: dict[str, Any] = {
        "dataset": name,
        "head": head,
        "quick": bool(quick),
        "n_train": ntr,
        "n_test": nte,
        "resolution": preset.resolution,
        "epochs_run": len(getattr(model, "history_", [])),
        "train_s": train_s,
        "data_cached": bool(train_split.cached and test_split.cached),
        "data_s": train_split.seconds + test_split.seconds,
        "metrics": metrics,
        "baselines": _baselines(x, y, test_split.x, test_split.y) if baselines else {},
        "files": {},
    }
    from scaleforge.workloads.operators.telemetry import record_evaluation

    record_evaluation(name, head, metrics)
    for base_name, base_metrics in result["baselines"].items():
        record_evaluation(name, base_name, base_metrics)
    if out is not None:
        from scaleforge.workloads.operators import plots

        files = {"model": str(model.save(out / "model.sfop"))}
        curves = {f"FNO-{head}": tuple(metrics["calibration"])}
        curves.update({k: tuple(v["calibration"]) for k, v in result["baselines"].items()})
        files["calibration"] = str(plots.plot_calibration(curves, out / f"{name}-calibration.png"))
        if name == "burgers":
            files["prediction"] = str(
                plots.plot_burgers(test_split.y, mean, std, out / "burgers-prediction.png", x0=test_split.x)
            )
        else:
            files["prediction"] = str(
                plots.plot_darcy(test_split.x[0], test_split.y[0], mean[0], std[0], out / "darcy-maps.png")
            )
        result["files"] = files
    return result
