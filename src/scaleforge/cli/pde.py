"""``scaleforge pde``: generate data sets, verify the solvers, plot figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app", "generate", "plot", "verify"]

app = typer.Typer(no_args_is_help=True, help="PDE workload: generate data, verify, plot.")


@app.command()
def generate(
    name: Annotated[str, typer.Argument(help="Data set: darcy or burgers.")],
    n: Annotated[int, typer.Option("--n", help="Number of samples.")] = 1200,
    resolution: Annotated[
        int | None, typer.Option(help="Grid size (darcy: 32/64/128, burgers: 128).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Data set seed.")] = 0,
    start: Annotated[int, typer.Option(help="First sample index.")] = 0,
    out: Annotated[Path, typer.Option(help="Output .npz file or .zarr directory.")] = Path("pde.npz"),
    executor: Annotated[str | None, typer.Option(help="Executor name (default from settings).")] = None,
    cache: Annotated[
        bool | None,
        typer.Option("--cache/--no-cache", help="Cache solved blocks (default: on, off with --scale)."),
    ] = None,
    scale: Annotated[bool, typer.Option(help="Stream to a zarr directory chunk by chunk (large n).")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Generate a PDE data set through scaleforge.map (parallel, cached) and save it."""
    from rich.console import Console

    from scaleforge.workloads.pde.datasets import generate as _generate
    from scaleforge.workloads.pde.datasets import generate_to_zarr

    console = Console()
    if scale:
        if start:
            raise typer.BadParameter("--scale streams samples 0..n-1; drop --start.")
        path = generate_to_zarr(
            name, n, out, resolution, seed=seed, executor=executor, progress=progress, cache=bool(cache)
        )
        console.print(f"wrote {n} {name} samples to {path} (zarr)")
        return
    ds = _generate(
        name,
        n,
        resolution,
        seed=seed,
        start=start,
        executor=executor,
        progress=progress,
        cache=cache is not False,
    )
    path = ds.save(out)
    st = ds.stats
    console.print(
        f"wrote {len(ds)} {name} samples {ds.inputs.shape[1:]} to {path} "
        f"({st['cached_blocks']} of {st['blocks']} blocks from the cache, {st['seconds']:.1f} s)"
    )


@app.command()
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object as the last line.")] = False,
    quick: Annotated[bool, typer.Option(help="Smaller sizes (smoke run).")] = False,
) -> None:
    """Check the solvers against known answers (convergence, adjoint, inverse, Burgers, Darcy)."""
    from scaleforge.workloads.pde.verify import run_verification

    report = run_verification(quick=quick)
    if as_json:
        typer.echo(
            json.dumps({k: report[k] for k in ("metrics", "targets", "passed", "all_passed", "seconds")})
        )
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="scaleforge pde verify")
        for col in ("metric", "value", "target", "ok"):
            table.add_column(col)
        for key, value in report["metrics"].items():
            target = report["targets"].get(key, "")
            ok = report["passed"].get(key)
            table.add_row(key, f"{value:.3g}", target, "" if ok is None else ("yes" if ok else "NO"))
        Console().print(table)
    if not report["all_passed"]:
        raise typer.Exit(code=1)


@app.command()
def plot(
    out: Annotated[Path, typer.Option(help="Directory for the PNG files.")] = Path("pde-plots"),
    quick: Annotated[bool, typer.Option(help="Smaller convergence study.")] = False,
) -> None:
    """Write PNGs: a Darcy sample, Burgers samples, the convergence plot, the inverse problem."""
    from scaleforge.workloads.pde.plots import plot_all

    for path in plot_all(out, quick=quick):
        typer.echo(str(path))
