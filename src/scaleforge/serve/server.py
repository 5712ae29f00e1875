"""Run the model server: uvicorn on one machine (one or several worker processes), or Ray Serve.

:class:`ServeSpec` is a picklable description of what to serve, so worker
processes (uvicorn's ``--workers``, spawned) and Ray Serve replicas each build
the same app with :func:`build_app`:

* one process: ``run(spec)`` runs uvicorn with uvloop and httptools, no access log;
* ``workers > 1``: the parent binds the socket and uvicorn's supervisor spawns
  the workers; Prometheus multiprocess mode is switched on in each worker
  (``Settings.monitor.multiprocess_dir`` or a temporary directory), so
  ``/metrics`` of any worker reports the sum of all of them;
* ``backend="ray"``: :func:`deploy_ray` wraps the same FastAPI app in a Ray
  Serve deployment (``serve.ingress`` with a builder, so each replica builds its
  own app and batcher) — Ray Serve places and scales the replicas across machines.

The target of a spec is a registry directory (``models/``), one model's
directory (``models/darcy-fno``), one version's directory
(``models/darcy-fno/3``), or an import path ``package.module:object``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import InvalidParameterError, MissingDependencyError
from scaleforge.serve.batching import BatchPolicy
from scaleforge.serve.registry import META_FILE, ModelRegistry, Routing, import_object

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServeSpec", "build_app", "deploy_ray", "resolve_target", "run", "serve_in_thread"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeSpec:
    """What to serve and how, in a picklable form.

    Parameters
    ----------
    target : str
        Registry dir, model dir, version dir or ``module:object``.
    name : str or None, default=None
        Model name for an import-path target (default: the object's name).
    max_batch_size : int, default=64
    max_wait_s : float, default=0.005
    max_queue : int or None, default=None
        Defaults to ``Settings.serve.max_queue``.
    request_timeout_s : float or None, default=None
        Defaults to ``Settings.serve.request_timeout_s``.
    worker : {"thread", "process"}, default="thread"
    device : str, default="auto"
    tokens : dict of str to str, default={}
        Bearer tokens; empty uses ``Settings.serve.tokens``.
    model_options : dict, default={}
        Adapter options for an import-path target (``input_shape``...).
    multiprocess_dir : str or None, default=None
        Prometheus multiprocess directory (set by :func:`run` for several workers).
    """

    target: str
    name: str | None = None
    max_batch_size: int = 64
    max_wait_s: float = 0.005
    max_queue: int | None = None
    request_timeout_s: float | None = None
    worker: str = "thread"
    device: str = "auto"
    tokens: dict[str, str] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    multiprocess_dir: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target:
            raise InvalidParameterError(
                f"The 'target' of ServeSpec must be a model directory or 'module:object'. Got {self.target!r}."
            )
        BatchPolicy(self.max_batch_size, self.max_wait_s)
        check_choice(self.worker, "worker", "ServeSpec", ("thread", "process"))


def resolve_target(target: str) -> tuple[str, Path | None, str | None, str | None]:
    """Classify a serve target.

    Parameters
    ----------
    target : str

    Returns
    -------
    kind : {"registry", "model", "version", "import"}
    root : pathlib.Path or None
        The registry root for directory targets.
    model, version : str or None
        The model (and version) a directory target selects.

    Raises
    ------
    InvalidParameterError
        If the target is neither an existing directory nor ``module:object``.
    """
    path = Path(target)
    if path.is_dir():
        if (path / META_FILE).is_file():
            return "version", path.parent.parent, path.parent.name, path.name
        if any((p / META_FILE).is_file() for p in path.iterdir() if p.is_dir()):
            return "model", path.parent, path.name, None
        return "registry", path, None, None
    if ":" in target and not path.exists():
        return "import", None, None, None
    raise InvalidParameterError(
        f"Cannot serve {target!r}: it is neither a model directory (models/, models/NAME or models/NAME/VERSION) "
        "nor an import path like 'package.module:model'."
    )


def build_app(spec: ServeSpec) -> FastAPI:
    """Build the FastAPI app a spec describes (called in each worker or replica).

    Parameters
    ----------
    spec : ServeSpec

    Returns
    -------
    fastapi.FastAPI
    """
    from scaleforge.monitor import metrics
    from scaleforge.serve.app import create_app

    if spec.multiprocess_dir is not None:
        metrics.enable_multiprocess(spec.multiprocess_dir)
    kind, root, model, version = resolve_target(spec.target)
    common: dict[str, Any] = {
        "policy": BatchPolicy(spec.max_batch_size, spec.max_wait_s),
        "max_queue": spec.max_queue,
        "request_timeout_s": spec.request_timeout_s,
        "worker": spec.worker,
        "device": spec.device,
        "tokens": spec.tokens or None,
    }
    if kind == "import":
        obj = import_object(spec.target, base_dir=Path.cwd())
        name = spec.name or spec.target.rpartition(":")[2].rpartition(".")[2]
        return create_app({name: obj}, model_options={name: spec.model_options}, **common)
    assert root is not None  # resolve_target returns a root for directory targets
    registry = ModelRegistry(root)
    if kind == "registry":
        return create_app(registry=registry, **common)
    app = create_app(registry=_OneModelRegistry(registry.root, str(model), version), **common)
    return app


class _OneModelRegistry(ModelRegistry):
    """A registry view restricted to one model (and optionally pinned to one version)."""

    def __init__(self, root: Path, model: str, version: str | None) -> None:
        super().__init__(root)
        self._model = model
        self._version = version

    def models(self) -> list[str]:
        return [self._model] if self._model in super().models() else []

    def routing(self, name: str) -> Routing:
        if self._version is not None and name == self._model:
            return Routing(default=self._version)
        return super().routing(name)

    def set_routing(self, name: str, routing: Routing) -> None:
        if self._version is None:  # a pinned version is a read-only view
            super().set_routing(name, routing)


def _uvicorn_config(app: Any, host: str, port: int, *, factory: bool, workers: int, log_level: str) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        factory=factory,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        lifespan="on",
    )


def run(
    spec: ServeSpec | Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "warning",
) -> None:
    """Serve until interrupted (SIGINT/SIGTERM drain in-flight batches first).

    Parameters
    ----------
    spec : ServeSpec or ASGI app
        A spec (any number of workers) or an app built by ``create_app`` (one worker).
    host : str, default="127.0.0.1"
        Loopback by default; pass ``0.0.0.0`` deliberately to listen on all interfaces.
    port : int, default=8000
    workers : int, default=1
        Worker processes sharing the port.
    log_level : str, default="warning"

    Raises
    ------
    InvalidParameterError
        For several workers without a spec, or bad numbers.
    """
    import uvicorn

    check_number(port, "port", "run", minimum=0, maximum=65535, integer=True)
    check_number(workers, "workers", "run", minimum=1, integer=True)
    if workers == 1:
        app = build_app(spec) if isinstance(spec, ServeSpec) else spec
        uvicorn.Server(_uvicorn_config(app, host, port, factory=False, workers=1, log_level=log_level)).run()
        return
    if not isinstance(spec, ServeSpec):
        raise InvalidParameterError(
            "Several workers need a ServeSpec (each worker builds its own app), not an app object. "
            "Write run(ServeSpec('models/'), workers=4)."
        )
    from uvicorn.supervisors import Multiprocess

    mp_dir = spec.multiprocess_dir
    if mp_dir is None:
        from scaleforge.settings import get_settings

        configured = get_settings().monitor.multiprocess_dir
        mp_dir = (
            str(configured)
            if configured is not None
            else tempfile.mkdtemp(prefix="scaleforge-serve-metrics-")
        )
    spec = _replace(spec, multiprocess_dir=mp_dir)
    config = _uvicorn_config(
        functools.partial(build_app, spec), host, port, factory=True, workers=workers, log_level=log_level
    )
    sock: socket.socket = config.bind_socket()
    logger.info("serving on %s:%d with %d workers (metrics in %s)", host, port, workers, mp_dir)
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()


def _replace(spec: ServeSpec, **changes: Any) -> ServeSpec:
    import dataclasses

    return dataclasses.replace(spec, **changes)


def deploy_ray(
    spec: ServeSpec,
    *,
    num_replicas: int = 1,
    route_prefix: str = "/",
    name: str = "scaleforge-serve",
    address: str | None = None,
    http_host: str = "127.0.0.1",
    http_port: int = 8000,
) -> Any:
    """Deploy the same app on Ray Serve; each replica batches on its own.

    Parameters
    ----------
    spec : ServeSpec
    num_replicas : int, default=1
    route_prefix : str, default="/"
    name : str, default="scaleforge-serve"
        Ray Serve application name.
    address : str, optional
        Ray cluster address (``ray://head:10001``); default: connect to or start a local Ray.
    http_host, http_port : str, int
        Where Ray Serve's proxy listens.

    Returns
    -------
    ray.serve.handle.DeploymentHandle

    Raises
    ------
    MissingDependencyError
        If Ray Serve is not installed.
    """
    check_number(num_replicas, "num_replicas", "deploy_ray", minimum=1, integer=True)
    if not isinstance(spec, ServeSpec):
        raise InvalidParameterError(f"deploy_ray needs a ServeSpec. Got {type(spec).__name__} instead.")
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise MissingDependencyError(
            "Ray Serve is not installed: pip install 'ray[serve]' (or 'scaleforge[ray]')."
        ) from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False)
    serve.start(http_options={"host": http_host, "port": http_port})

    def builder() -> FastAPI:  # Ray calls a plain function on each replica (not a partial)
        return build_app(spec)

    ingress = serve.ingress(builder)
    deployment = serve.deployment(name="ScaleforgeModelServer", num_replicas=num_replicas)(ingress())
    return serve.run(deployment.bind(), name=name, route_prefix=route_prefix)


@contextlib.contextmanager
def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 60.0
) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a background thread; yield its base URL.

    For notebooks, demos and tests: the server starts on a free loopback port
    (``port=0``), the call returns once it accepts connections, and leaving the
    block drains in-flight requests and stops it.

    Parameters
    ----------
    app : ASGI application
        E.g. from :func:`scaleforge.serve.create_app`.
    host : str, default="127.0.0.1"
    port : int, default=0
        0 picks a free port.
    timeout_s : float, default=60.0
        Longest wait for start-up (models load before the server listens).

    Yields
    ------
    str
        The base URL, e.g. ``"http://127.0.0.1:50123"``.

    Raises
    ------
    ServeError
        If the server does not start within ``timeout_s``.
    """
    import uvicorn

    from scaleforge.errors import ServeError

    check_number(port, "port", "serve_in_thread", minimum=0, maximum=65535, integer=True)
    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="scaleforge-serve-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ServeError(f"The model server did not start on {host}:{port} within {timeout_s} s.")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
