"""``scaleforge demo``: the flagship pipeline on embedded defaults (what ``make demo`` runs)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["demo"]


def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for plots, summary and the demo's model.")
    ] = Path("demo-output"),
    full: Annotated[
        bool, typer.Option("--full", help="Standard sizes instead of the quick ones (slower).")
    ] = False,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Skip the model-server step.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as one JSON object on the last line.")
    ] = False,
) -> None:
    """Run the flagship pipeline: cached parallel PDE sweep, probabilistic operator, serving, metrics.

    Falls back to the cache demonstration when the operators workload is not installed.
    """
    from rich.console import Console

    console = Console(stderr=as_json)
    out.mkdir(parents=True, exist_ok=True)
    try:
        pipeline = importlib.import_module("scaleforge.workloads.operators.pipeline")
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("scaleforge.workloads.operators"):
            raise
        from scaleforge.cache.demo import run_cache_demo

        figures = run_cache_demo(console, workdir=out)
    else:
        figures = pipeline.run_demo(out, console=console, quick=not full, serve=not no_serve)
    if as_json:
        typer.echo(json.dumps({"demo": figures}, default=str))
