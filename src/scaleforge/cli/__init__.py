"""The ``scaleforge`` command: one verb per noun.

Each noun lives in its own module exposing ``app = typer.Typer(...)``; this
module mounts the ones that are installed.
"""

from __future__ import annotations

import importlib
import sys

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="scaleforge",
    help="Make scientific Python workloads fast and scalable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (command name, module, help)
_SUBCOMMANDS = [
    ("cache", "scaleforge.cli.cache", "Inspect and clear the cache tiers."),
    ("pde", "scaleforge.cli.pde", "PDE workload: generate data, verify, plot."),
    (
        "operators",
        "scaleforge.cli.operators",
        "Probabilistic neural operators: train, evaluate, active learning.",
    ),
    ("cluster", "scaleforge.cli.cluster", "Reservoir clustering of time series and profiles."),
    ("habitat", "scaleforge.cli.habitat", "Lunar-habitat life-support control."),
    ("jobs", "scaleforge.cli.jobs", "Job service: serve, worker, submit, status, result, cancel, list."),
    ("bench", "scaleforge.cli.bench", "Benchmark history and regression comparison."),
]
# single commands: (module, function name)
_COMMANDS = [
    ("scaleforge.cli.demo", "demo"),
    ("scaleforge.cli.serve", "serve"),
    ("scaleforge.cli.monitor", "dashboard"),
    ("scaleforge.cli.monitor", "profile"),
    ("scaleforge.cli.doctor", "doctor"),
]


def _optional_module(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:  # that noun is not part of this installation
            return None
        raise


for _name, _module, _help in _SUBCOMMANDS:
    _mod = _optional_module(_module)
    if _mod is not None:
        app.add_typer(_mod.app, name=_name, help=_help)  # type: ignore[attr-defined]

for _module, _func in _COMMANDS:
    _mod = _optional_module(_module)
    if _mod is not None and hasattr(_mod, _func):
        app.command(name=_func)(getattr(_mod, _func))


def main() -> None:
    """Entry point of the ``scaleforge`` console script."""
    from scaleforge.errors import ScaleforgeError

    try:
        app()
    except ScaleforgeError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
