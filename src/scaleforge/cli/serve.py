"""``scaleforge serve MODEL_DIR_OR_IMPORT_PATH``: serve a model over HTTP with dynamic batching.

The target is a registry directory (``models/``), one model (``models/NAME``),
one version (``models/NAME/VERSION``) or an import path ``package.module:object``
(a ModelAPI, torch module, probabilistic operator or callable). Settings
(tokens, queue bound, timeout) are read here, at the edge, and passed down.
Defaults bind to loopback only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["serve"]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def serve(
    model: Annotated[
        str, typer.Argument(help="models/ dir, models/NAME, models/NAME/VERSION or module:object.")
    ],
    max_batch_size: Annotated[int, typer.Option(help="Largest batch, counted in items.")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="Longest wait for a batch to fill (adaptive).")] = 5.0,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine.")] = 1,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    host: Annotated[
        str, typer.Option(help="Interface; 0.0.0.0 listens on all (deliberately).")
    ] = "127.0.0.1",
    backend: Annotated[str, typer.Option(help="'local' (uvicorn) or 'ray' (Ray Serve).")] = "local",
    name: Annotated[str | None, typer.Option(help="Model name for an import path.")] = None,
    worker: Annotated[str, typer.Option(help="Run each model in a 'thread' or a 'process'.")] = "thread",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (falls back to CPU).")] = "auto",
    max_queue: Annotated[int | None, typer.Option(help="Queue bound per model in items.")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="Per-request deadline in seconds.")] = None,
    replicas: Annotated[int, typer.Option(help="Ray Serve replicas (--backend ray).")] = 1,
    config: Annotated[Path | None, typer.Option(help="A scaleforge.toml settings file.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve a model over HTTP: POST /v1/models/NAME/predict, /metrics, /health."""
    from scaleforge.errors import ScaleforgeError
    from scaleforge.settings import load_settings

    if backend not in ("local", "ray"):
        raise _fail(f"--backend must be 'local' or 'ray'. Got {backend!r}.")
    try:
        from scaleforge.serve.server import ServeSpec, deploy_ray, run

        settings = load_settings(config)
        tokens = {k: v.get_secret_value() for k, v in settings.serve.tokens.items()}
        spec = ServeSpec(
            target=model,
            name=name,
            max_batch_size=max_batch_size,
            max_wait_s=max_wait_ms / 1000.0,
            max_queue=max_queue if max_queue is not None else settings.serve.max_queue,
            request_timeout_s=timeout_s if timeout_s is not None else settings.serve.request_timeout_s,
            worker=worker,
            device=device,
            tokens=tokens,
            multiprocess_dir=str(settings.monitor.multiprocess_dir)
            if settings.monitor.multiprocess_dir
            else None,
        )
        if backend == "ray":
            deploy_ray(
                spec, num_replicas=replicas, http_host=host, http_port=port, address=settings.compute.address
            )
            typer.echo(f"Deployed on Ray Serve at http://{host}:{port}/")
            return
        typer.echo(f"Serving {model} on http://{host}:{port} ({workers} worker(s)); Ctrl-C drains and stops.")
        run(spec, host=host, port=port, workers=workers, log_level=log_level)
    except ScaleforgeError as exc:
        raise _fail(str(exc)) from exc
