"""``scaleforge dashboard`` and ``scaleforge profile``.

``dashboard`` serves the live web page (metrics of this process, a
multiprocess directory and ``--scrape`` URLs); ``profile`` runs a Python script
under pyinstrument (HTML and speedscope flame graphs) or cProfile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["dashboard", "profile"]

_console = Console()


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def dashboard(
    port: Annotated[int, typer.Option("--port", "-p", help="Port to serve on.")] = 8787,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (loopback by default).")
    ] = "127.0.0.1",
    scrape: Annotated[
        list[str] | None,
        typer.Option("--scrape", help="A /metrics URL of another process to read (repeatable)."),
    ] = None,
    multiprocess_dir: Annotated[
        Path | None,
        typer.Option(
            "--multiprocess-dir", help="Directory of multiprocess metrics (default: from settings)."
        ),
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="SQLite file keeping history across restarts.")
    ] = None,
    interval: Annotated[
        float | None, typer.Option("--interval", help="Seconds between samples (default: from settings).")
    ] = None,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="URL receiving alert transitions as JSON POSTs.")
    ] = None,
    no_local: Annotated[
        bool, typer.Option("--no-local", help="Do not read this process's own metrics.")
    ] = False,
) -> None:
    """Serve the live monitoring dashboard (cache, tasks, workers, requests, latency, alerts)."""
    from scaleforge.errors import ScaleforgeError

    try:
        from scaleforge.monitor.dashboard import build_dashboard, run_dashboard

        dash = build_dashboard(
            scrape=scrape or (),
            multiprocess_dir=multiprocess_dir,
            include_local=not no_local,
            store_path=store,
            webhook_url=webhook,
            interval_s=interval,
        )
    except ScaleforgeError as exc:
        raise _fail(str(exc)) from exc
    _console.print(f"[bold]scaleforge dashboard[/bold] on http://{host}:{port}  (Ctrl-C to stop)")
    for src in dash.collector.sources:
        _console.print(f"  reading {src.kind}: {src.name}")
    run_dashboard(dash, host=host, port=port)


def profile(
    script: Annotated[Path, typer.Argument(help="The Python script to run.")],
    args: Annotated[list[str] | None, typer.Argument(help="Arguments passed to the script.")] = None,
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Where to write the profiles.")
    ] = Path("."),
    format_: Annotated[
        list[str] | None,
        typer.Option(
            "--format", "-f", help="html, speedscope, pstats or text (repeatable; default html+speedscope)."
        ),
    ] = None,
    cprofile: Annotated[
        bool, typer.Option("--cprofile", help="Also write cProfile stats (a second run).")
    ] = False,
    interval: Annotated[float, typer.Option("--interval", help="Sampling interval in seconds.")] = 0.001,
) -> None:
    """Run SCRIPT under the profiler and write flame graphs (HTML, speedscope) and cProfile stats."""
    from scaleforge.errors import ScaleforgeError
    from scaleforge.monitor.profiling import profile_script

    formats = list(format_ or ["html", "speedscope"])
    if cprofile and "pstats" not in formats:
        formats.append("pstats")
    try:
        results = profile_script(
            script, args or [], output_dir=output_dir, formats=formats, interval_s=interval
        )
    except ScaleforgeError as exc:
        raise _fail(str(exc)) from exc
    for res in results:
        _console.print(f"wrote {res.format:<10} {res.path}")
