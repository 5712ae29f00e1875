"""``scaleforge jobs serve|worker|submit|status|result|cancel|list``.

Server-side commands (``serve``, ``worker``) read the database URL, lease and
tokens from settings (``SCALEFORGE_JOBS__DATABASE_URL``...) unless given as
options. Client commands talk to a running service at ``--url`` with
``--token``; without them, ``Settings.jobs.url`` / ``Settings.jobs.token``
(``SCALEFORGE_JOBS__URL`` / ``SCALEFORGE_JOBS__TOKEN``, or the config file).
The older ``$SCALEFORGE_JOBS_URL`` / ``$SCALEFORGE_JOBS_TOKEN`` still work and
beat the settings.
``--import MODULE`` (repeatable) imports modules that call
``scaleforge.jobs.register_function`` so their functions can be submitted and run.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app", "cancel", "list_jobs", "result", "serve", "status", "submit", "worker"]

app = typer.Typer(
    help="Job service: serve, worker, submit, status, result, cancel, list.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_URL = typer.Option(
    None, "--url", envvar="SCALEFORGE_JOBS_URL", help="Job service URL. Default: Settings.jobs.url."
)
_TOKEN = typer.Option(
    None, "--token", envvar="SCALEFORGE_JOBS_TOKEN", help="Bearer token. Default: Settings.jobs.token."
)
_DB = typer.Option(None, "--database-url", help="Default: Settings.jobs.database_url.")
_SCHEMA = typer.Option(None, "--schema", help="PostgreSQL schema (search_path) to use.")
_IMPORT = typer.Option(None, "--import", help="Module registering functions (repeatable).")
_RESULT_DIR = typer.Option(None, "--result-dir", help="Default: Settings.jobs.result_dir.")
_PARAM = typer.Option(None, "--param", "-p", help="KEY=VALUE (repeatable).")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _import_modules(modules: list[str] | None) -> None:
    for name in modules or []:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise _fail(f"cannot import {name!r} given to --import: {exc}") from exc


def _client(url: str | None, token: str | None) -> Any:
    from scaleforge.errors import ScaleforgeError
    from scaleforge.jobs.client import Client
    from scaleforge.settings import get_settings

    try:
        settings = get_settings().jobs
    except ScaleforgeError as exc:
        raise _fail(str(exc)) from exc
    if url is None:
        url = settings.url
    if token is None and settings.token is not None:
        token = settings.token.get_secret_value()
    try:
        return Client(url, token=token)
    except Exception as exc:
        raise _fail(str(exc)) from exc


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    from scaleforge.errors import ScaleforgeError

    try:
        return fn(*args, **kwargs)
    except (ScaleforgeError, TimeoutError) as exc:
        raise _fail(str(exc)) from exc


def _json_form(value: Any) -> Any:
    from scaleforge.jobs.results import to_json

    return _call(to_json, value)  # arrays as {"__ndarray__", "dtype", "shape", "data"}


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@app.command()
def serve(
    host: str = typer.Option(None, "--host", help="Default: Settings.serve.host (127.0.0.1)."),
    port: int = typer.Option(8080, "--port"),
    database_url: str | None = _DB,
    schema: str | None = _SCHEMA,
    imports: list[str] | None = _IMPORT,
    max_body_bytes: int | None = typer.Option(
        None, "--max-body-bytes", help="Default: Settings.jobs.max_body_bytes (1 MB)."
    ),
    worker_concurrency: int = typer.Option(1, "--worker-concurrency", help="For the autoscaling metric."),
    log_level: str = typer.Option("warning", "--log-level"),
) -> None:
    """Run the job service (FastAPI on uvicorn)."""
    import uvicorn

    from scaleforge.errors import ScaleforgeError
    from scaleforge.jobs.service import create_app
    from scaleforge.jobs.store import SQLJobStore
    from scaleforge.settings import get_settings

    _import_modules(imports)
    try:
        store = SQLJobStore(database_url, schema=schema)
        api = create_app(store, max_body_bytes=max_body_bytes, worker_concurrency=worker_concurrency)
    except ScaleforgeError as exc:
        raise _fail(str(exc)) from exc
    uvicorn.run(api, host=host or get_settings().serve.host, port=port, log_level=log_level)


@app.command()
def worker(
    executor: str = typer.Option("processes", "--executor", help="processes, threads, ray, dask or slurm."),
    concurrency: int = typer.Option(1, "--concurrency", help="Jobs in flight at once."),
    database_url: str | None = _DB,
    schema: str | None = _SCHEMA,
    imports: list[str] | None = _IMPORT,
    lease_s: float | None = typer.Option(None, "--lease-s", help="Default: Settings.jobs.lease_s."),
    poll_interval_s: float = typer.Option(0.5, "--poll-interval-s"),
    result_dir: Path | None = _RESULT_DIR,
    worker_id: str | None = typer.Option(None, "--worker-id"),
    metrics_port: int | None = typer.Option(None, "--metrics-port", help="Serve /metrics on this port."),
    max_jobs: int | None = typer.Option(None, "--max-jobs", help="Exit after this many jobs."),
    until_idle: bool = typer.Option(False, "--until-idle", help="Exit when the queue is empty."),
) -> None:
    """Claim and run jobs until interrupted (SIGTERM drains: in-flight jobs finish first)."""
    from scaleforge.errors import ScaleforgeError
    from scaleforge.jobs.store import SQLJobStore
    from scaleforge.jobs.worker import Worker

    if executor == "slurm":
        from scaleforge.compute.slurm import register

        register()
    _import_modules(imports)
    try:
        store = SQLJobStore(database_url, schema=schema)
        w = Worker(
            store,
            executor=executor,
            concurrency=concurrency,
            lease_s=lease_s,
            poll_interval_s=poll_interval_s,
            result_dir=result_dir,
            worker_id=worker_id,
        )
    except ScaleforgeError as exc:
        raise _fail(str(exc)) from exc
    if metrics_port is not None:
        import prometheus_client

        from scaleforge.monitor.metrics import REGISTRY

        prometheus_client.start_http_server(metrics_port, registry=REGISTRY)

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        if w.stopping:  # second signal: leave now; leases expire and jobs are re-queued
            sys.exit(1)
        w.stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    n = _call(w.run, stop_when_idle=until_idle, max_jobs=max_jobs)
    typer.echo(f"worker {w.worker_id}: {n} job(s) done", err=True)


def _parse_params(param: list[str] | None, params_json: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise _fail(f"--params-json is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise _fail("--params-json must be a JSON object, e.g. '{\"n\": 16}'")
        out.update(loaded)
    for item in param or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise _fail(f"--param expects KEY=VALUE (VALUE parsed as JSON when it can be). Got {item!r}.")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


@app.command()
def submit(
    workload: str = typer.Argument(..., help="A name from GET /v1/workloads."),
    param: list[str] | None = _PARAM,
    params_json: str | None = typer.Option(None, "--params-json", help="All parameters as a JSON object."),
    priority: int = typer.Option(0, "--priority"),
    key: str | None = typer.Option(None, "--key", help="Idempotency key (safe retries)."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the job to finish and print its result."),
    url: str | None = _URL,
    token: str | None = _TOKEN,
) -> None:
    """Submit a job and print its id."""
    params = _parse_params(param, params_json)
    with _client(url, token) as client:
        job = _call(client.submit, workload, params, priority=priority, idempotency_key=key)
        typer.echo(job.id)
        if wait:
            done = _call(client.wait, job.id)
            if done.status != "succeeded":
                raise _fail(f"job {job.id} {done.status}: {done.error}")
            _print_json(_json_form(_call(client.result, job.id)))


@app.command()
def status(job_id: str, url: str | None = _URL, token: str | None = _TOKEN) -> None:
    """Print one job as JSON."""
    with _client(url, token) as client:
        _print_json(_call(client.get, job_id).to_dict())


@app.command()
def result(job_id: str, url: str | None = _URL, token: str | None = _TOKEN) -> None:
    """Print the result of a succeeded job as JSON."""
    with _client(url, token) as client:
        _print_json(_json_form(_call(client.result, job_id)))


@app.command()
def cancel(job_id: str, url: str | None = _URL, token: str | None = _TOKEN) -> None:
    """Cancel a queued or running job."""
    with _client(url, token) as client:
        job = _call(client.cancel, job_id)
        typer.echo(f"{job.id} {job.status}")


@app.command("list")
def list_jobs(
    status_filter: str | None = typer.Option(
        None, "--status", help="queued, running, succeeded, failed, cancelled."
    ),
    limit: int = typer.Option(50, "--limit"),
    cursor: str | None = typer.Option(None, "--cursor"),
    as_json: bool = typer.Option(False, "--json"),
    url: str | None = _URL,
    token: str | None = _TOKEN,
) -> None:
    """List your jobs, oldest first (one page; --cursor for the next)."""
    with _client(url, token) as client:
        jobs, next_cursor = _call(client.list, status=status_filter, limit=limit, cursor=cursor)
    if as_json:
        _print_json({"items": [j.to_dict() for j in jobs], "next_cursor": next_cursor})
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=32)
    for column in ("workload", "status", "attempts", "priority"):
        table.add_column(column)
    for j in jobs:
        table.add_row(j.id, j.workload, j.status, str(j.attempts), str(j.priority))
    console = Console()
    console.print(table)
    if next_cursor:
        console.print(f"next page: --cursor {next_cursor}")
