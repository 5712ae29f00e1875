"""``scaleforge operators``: train, evaluate and run active learning with probabilistic neural operators."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["app"]

_AL_OUT = Path("operators-active-learning")

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


class Dataset(StrEnum):
    """PDE data sets."""

    burgers = "burgers"
    darcy = "darcy"


class Head(StrEnum):
    """Probabilistic heads."""

    gaussian = "gaussian"
    crps = "crps"
    ensemble = "ensemble"
    laplace = "laplace"


class Acquisition(StrEnum):
    """Acquisition functions of active learning."""

    epistemic = "epistemic"
    total = "total"
    random = "random"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item"):
        return obj.item()
    return obj


def _table(title: str, rows: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    cols = ["rel_l2", "nll", "crps", "cov50", "cov90", "cov95", "width90"]
    table.add_column("model")
    for c in cols:
        table.add_column(c, justify="right")
    for name, r in rows.items():
        table.add_row(name, *(f"{r[c]:.4g}" if c in r else "–" for c in cols))
    Console().print(table)


@app.command()
def train(
    dataset: Annotated[Dataset, typer.Argument(help="burgers (1D, n=128) or darcy (2D, 32²).")],
    head: Annotated[Head, typer.Option("--head", help="Probabilistic head.")] = Head.laplace,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Override the preset's epochs.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Resume from OUT/checkpoints after an interruption.")
    ] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Small data and model (about a minute).")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: operators-<dataset>-<head>).")
    ] = None,
    n_train: Annotated[
        int | None, typer.Option("--n-train", min=4, help="Training fields (10 % are validation).")
    ] = None,
    n_test: Annotated[int | None, typer.Option("--n-test", min=1, help="Test fields.")] = None,
    baselines: Annotated[
        bool, typer.Option("--baselines/--no-baselines", help="Also fit ridge and GP regression.")
    ] = True,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Train a probabilistic FNO, evaluate it against the baselines, save the model and plots."""
    from scaleforge.workloads.operators.experiment import run_experiment

    folder = out if out is not None else Path(f"operators-{dataset.value}-{head.value}")
    result = run_experiment(
        dataset.value,
        head.value,
        quick=quick,
        epochs=epochs,
        out_dir=folder,
        resume=resume,
        baselines=baselines,
        seed=seed,
        n_train=n_train,
        n_test=n_test,
        progress=not as_json,
    )
    if as_json:
        typer.echo(json.dumps(_jsonable(result)))
        return
    _table(
        f"{dataset.value}: FNO-{head.value} ({result['n_train']} train / {result['n_test']} test)",
        {f"FNO-{head.value}": result["metrics"], **result["baselines"]},
    )
    typer.echo(f"model and plots in {folder} (trained in {result['train_s']:.1f} s)")


@app.command()
def evaluate(
    model: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A model file written by `train`.")
    ],
    n_test: Annotated[int, typer.Option("--n-test", min=1, help="Test fields.")] = 200,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
) -> None:
    """Evaluate a saved model on the test split of its data set (1D: Burgers, 2D: Darcy)."""
    from scaleforge.workloads.operators.base import ProbabilisticOperator
    from scaleforge.workloads.operators.data import TEST_START, load_split
    from scaleforge.workloads.operators.experiment import evaluate as run_eval

    op = ProbabilisticOperator.load(model)
    name = "burgers" if op.dim_ == 1 else "darcy"
    test = load_split(name, n_test, op.resolution_[0], seed=seed, start=TEST_START, progress=not as_json)
    metrics = run_eval(op, test.x, test.y)
    summary = {"model": str(model), "dataset": name, "head": op.head, "n_test": n_test, "metrics": metrics}
    if as_json:
        typer.echo(json.dumps(_jsonable(summary)))
        return
    _table(f"{model} on {n_test} {name} test fields", {f"FNO-{op.head}": metrics})


@app.command("active-learning")
def active_learning(
    head: Annotated[Head, typer.Option("--head", help="Probabilistic head.")] = Head.laplace,
    quick: Annotated[bool, typer.Option("--quick", help="Small pool and model.")] = False,
    rounds: Annotated[int | None, typer.Option("--rounds", min=1)] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the plot.")] = _AL_OUT,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    acquisition: Annotated[
        Acquisition,
        typer.Option(
            "--acquisition", help="Score: epistemic variance (laplace/ensemble), total variance, or random."
        ),
    ] = Acquisition.epistemic,
    diverse: Annotated[
        bool, typer.Option("--diverse/--no-diverse", help="Penalise near-duplicate fields within a batch.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Uncertainty-driven acquisition against random acquisition on Darcy, at equal simulation budgets."""
    from scaleforge.workloads.operators import plots
    from scaleforge.workloads.operators.active import run_active_learning
    from scaleforge.workloads.operators.experiment import AL_PRESETS

    kwargs = dict(AL_PRESETS[quick])
    if rounds is not None:
        kwargs["rounds"] = rounds
    if kwargs["initial"] + kwargs["rounds"] * kwargs["batch"] > kwargs["pool_size"]:
        kwargs["pool_size"] = kwargs["initial"] + kwargs["rounds"] * kwargs["batch"]

    def report(strategy: str, n: int, err: float) -> None:
        if not as_json:
            typer.echo(f"{strategy:>8}: {n:4d} labels  test rel. L2 {err:.4f}")

    result = run_active_learning(
        head=head.value,
        seed=seed,
        acquisition=acquisition.value,
        diverse=diverse,
        on_round=report,
        **kwargs,
    )
    path = plots.plot_active_learning(result.labels, result.errors, out / "active-learning.png")
    summary = {**result.to_dict(), "plot": str(path)}
    if as_json:
        typer.echo(json.dumps(_jsonable(summary)))
        return
    typer.echo(f"final error ratio {acquisition.value} / random: {result.ratio:.3f}  (plot: {path})")
