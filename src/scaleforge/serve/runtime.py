"""Loaded models: one batcher per model version, routing, shadow traffic, metrics and stats.

:class:`ModelServer` is what the HTTP app talks to; it is usable without HTTP
(``await server.predict("name", [x])``), which is how the Ray Serve backend
and the tests drive it.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import (
    InvalidParameterError,
    ModelNotFoundError,
    ServeError,
)
from scaleforge.monitor import metrics
from scaleforge.serve.adapters import as_model_api
from scaleforge.serve.base import ModelAPI, ModelContext
from scaleforge.serve.batching import BatchPolicy, DynamicBatcher, QueueFullError
from scaleforge.serve.registry import ModelRegistry, Routing, VersionInfo, check_name

if TYPE_CHECKING:
    from scaleforge.settings import Settings

__all__ = ["DEFAULT_LATENCY_BUCKETS", "LoadedModel", "ModelNotFoundError", "ModelServer"]

logger = logging.getLogger(__name__)

#: Latency buckets (seconds): sub-millisecond resolution for the batched fast path.
DEFAULT_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_LABELS = ("model", "version")


@dataclass(slots=True)
class _Metrics:
    ok: Any
    latency: Any
    batch_size: Any
    queue_wait: Any
    queue_items: Any
    requests: Any
    errors: Any
    labels: dict[str, str]

    def count(self, status: int) -> None:
        if status == 200:
            self.ok.inc()
        else:
            self.requests.labels(status=str(status), **self.labels).inc()

    def error(self, kind: str) -> None:
        self.errors.labels(kind=kind, **self.labels).inc()


def _make_metrics(name: str, version: str, buckets: Sequence[float], max_batch_size: int) -> _Metrics:
    labels = {"model": name, "version": version}
    requests = metrics.counter(
        "scaleforge_requests_total",
        "Predict requests by model, version and HTTP status",
        [*_LABELS, "status"],
    )
    latency = metrics.histogram(
        "scaleforge_request_latency_seconds", "Predict latency, body read to response", _LABELS, buckets
    )
    batch = metrics.histogram(
        "scaleforge_batch_size", "Items per batch run by the model", _LABELS, _BATCH_BUCKETS
    )
    wait = metrics.histogram(
        "scaleforge_queue_wait_seconds", "Time from arrival to batch dispatch", _LABELS, buckets
    )
    queue = metrics.gauge("scaleforge_serve_queue_items", "Items waiting for a batch", _LABELS)
    limit = metrics.gauge(
        "scaleforge_max_batch_size", "Largest batch in items", _LABELS, multiprocess_mode="mostrecent"
    )
    limit.labels(**labels).set(max_batch_size)
    errors = metrics.counter(
        "scaleforge_serve_errors_total", "Failed predict requests by kind", [*_LABELS, "kind"]
    )
    return _Metrics(
        ok=requests.labels(status="200", **labels),
        latency=latency.labels(**labels),
        batch_size=batch.labels(**labels),
        queue_wait=wait.labels(**labels),
        queue_items=queue.labels(**labels),
        requests=requests,
        errors=errors,
        labels=labels,
    )


class LoadedModel:
    """One version of a model, set up and batching.

    Attributes
    ----------
    name, version : str
    api : ModelAPI
    ctx : ModelContext
    batcher : DynamicBatcher
    info : VersionInfo or None
        Registry metadata when loaded from disk.
    loaded_at : float
        Unix time of loading.
    """

    def __init__(
        self,
        api: ModelAPI,
        ctx: ModelContext,
        *,
        policy: BatchPolicy,
        max_queue: int,
        timeout_s: float,
        worker: str,
        buckets: Sequence[float],
        info: VersionInfo | None = None,
    ) -> None:
        self.name = ctx.name
        self.version = ctx.version
        self.api = api
        self.ctx = ctx
        self.info = info
        self.loaded_at = time.time()
        self.extra = {"model": ctx.name, "version": ctx.version}
        self.metrics = _make_metrics(ctx.name, ctx.version, buckets, policy.max_batch_size)
        self.batcher: DynamicBatcher[Any, Any] = DynamicBatcher(
            functools.partial(api.predict, ctx=ctx),
            policy=policy,
            max_queue=max_queue,
            timeout_s=timeout_s,
            worker=worker,
            setup=functools.partial(api.setup, ctx),
            teardown=functools.partial(api.teardown, ctx),
            on_batch=self._on_batch,
            name=f"{ctx.name}:{ctx.version}",
        )

    def _on_batch(self, n_items: int, waits: list[float], duration_s: float) -> None:
        m = self.metrics
        m.batch_size.observe(n_items)
        for w in waits:
            m.queue_wait.observe(w)
        m.queue_items.set(self.batcher.queued_items)

    def describe(self) -> dict[str, Any]:
        """JSON description for ``GET /v1/models/{name}``.

        Returns
        -------
        dict
        """
        desc = getattr(self.api, "describe", None)
        out: dict[str, Any] = {
            "version": self.version,
            "adapter": type(self.api).__name__,
            "input": desc() if callable(desc) else {},
            "loaded_at": self.loaded_at,
            "max_batch_size": self.batcher.policy.max_batch_size,
            "max_wait_s": self.batcher.policy.max_wait_s,
        }
        if self.info is not None:
            out.update(sha256=self.info.sha256, loader=self.info.loader, metadata=self.info.metadata)
        return out


class ModelServer:
    """Models being served: loading, routing, batching, shadowing, stats.

    Parameters
    ----------
    registry : ModelRegistry or path-like, optional
        Where versions are loaded from; models can also be added in memory.
    policy : BatchPolicy, optional
        Batching of every model; defaults to ``serve.max_batch_size`` and ``serve.max_wait_s``.
    max_queue : int, optional
        Queue bound per model version in items (``serve.max_queue``).
    request_timeout_s : float, optional
        Per-request deadline (``serve.request_timeout_s``).
    worker : {"thread", "process"}, default="thread"
        Where each model runs.
    device : str, default="auto"
        Passed to models through :class:`ModelContext` (CUDA with CPU fallback).
    latency_buckets : sequence of float, optional
        Buckets of the latency and queue-wait histograms (the first server of a
        process fixes them).
    settings : Settings, optional
        Defaults to :func:`scaleforge.settings.get_settings`.
    """

    def __init__(
        self,
        *,
        registry: ModelRegistry | str | os.PathLike[str] | None = None,
        policy: BatchPolicy | None = None,
        max_queue: int | None = None,
        request_timeout_s: float | None = None,
        worker: str = "thread",
        device: str = "auto",
        latency_buckets: Sequence[float] | None = None,
        settings: Settings | None = None,
    ) -> None:
        if settings is None:
            from scaleforge.settings import get_settings

            settings = get_settings()
        cfg = settings.serve
        self.policy = policy if policy is not None else BatchPolicy(cfg.max_batch_size, cfg.max_wait_s)
        if not isinstance(self.policy, BatchPolicy):
            raise InvalidParameterError(
                f"The 'policy' parameter of ModelServer must be a BatchPolicy. Got {type(policy).__name__} instead."
            )
        self.max_queue = cfg.max_queue if max_queue is None else max_queue
        self.timeout_s = cfg.request_timeout_s if request_timeout_s is None else request_timeout_s
        check_number(self.max_queue, "max_queue", "ModelServer", minimum=1, integer=True)
        check_number(self.timeout_s, "request_timeout_s", "ModelServer", minimum=0, exclusive_minimum=True)
        check_choice(worker, "worker", "ModelServer", ("thread", "process"))
        self.worker = worker
        self.device = device
        self.buckets = tuple(latency_buckets) if latency_buckets is not None else DEFAULT_LATENCY_BUCKETS
        if registry is not None and not isinstance(registry, ModelRegistry):
            registry = ModelRegistry(registry)
        self.registry: ModelRegistry | None = registry
        self._pending: list[tuple[str, ModelAPI, str, dict[str, Any]]] = []
        self._loaded: dict[str, dict[str, LoadedModel]] = {}
        self._routing: dict[str, Routing] = {}
        self._started = False
        self._closing = False
        self._rand = random.Random()
        self._shadow_ok = metrics.counter(
            "scaleforge_serve_shadow_requests_total", "Shadow requests by outcome", [*_LABELS, "outcome"]
        )

    # ------------------------------------------------------------------ models
    def add(
        self,
        name: str,
        model: Any,
        *,
        version: str = "1",
        metadata: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        """Register an in-memory model, loaded by :meth:`start` (or at once after it).

        Parameters
        ----------
        name : str
        model : ModelAPI, torch.nn.Module, probabilistic operator or callable
        version : str, default="1"
        metadata : mapping, optional
        **options
            Adapter options (see :func:`~scaleforge.serve.adapters.as_model_api`).
        """
        check_name(name)
        check_name(version, "version")
        api = as_model_api(model, **options)
        self._pending.append((name, api, version, dict(metadata or {})))

    async def start(self) -> None:
        """Set up pending in-memory models and the registry's routed versions."""
        if self._started:
            return
        self._started = True
        for name, api, version, meta in self._pending:
            await self._activate(
                api,
                ModelContext(
                    name=name,
                    version=version,
                    device=self.device,
                    max_batch_size=self.policy.max_batch_size,
                    metadata=meta,
                ),
            )
            self._routing.setdefault(name, Routing(default=version))
        self._pending.clear()
        if self.registry is not None:
            for name in self.registry.models():
                routing = self.registry.routing(name)
                wanted = {self.registry.default_version(name), *routing.weights}
                if routing.shadow:
                    wanted.add(routing.shadow)
                for version in sorted(wanted):
                    await self.load(name, version)
                self._routing[name] = routing

    async def _activate(
        self, api: ModelAPI, ctx: ModelContext, info: VersionInfo | None = None
    ) -> LoadedModel:
        lm = LoadedModel(
            api,
            ctx,
            policy=self.policy,
            max_queue=self.max_queue,
            timeout_s=self.timeout_s,
            worker=self.worker,
            buckets=self.buckets,
            info=info,
        )
        await lm.batcher.start()
        old = self._loaded.setdefault(ctx.name, {}).get(ctx.version)
        self._loaded[ctx.name][ctx.version] = lm
        if old is not None:
            await old.batcher.aclose(drain=True)
        logger.info("serving model %s version %s (%s)", ctx.name, ctx.version, type(api).__name__)
        return lm

    async def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Load a version from the registry without restarting (replacing it if loaded).

        Parameters
        ----------
        name : str
        version : str, optional
            Defaults to the registry's default version.

        Returns
        -------
        LoadedModel
        """
        if self.registry is None:
            raise InvalidParameterError(
                "This server has no model registry; start it with registry=... (scaleforge serve MODEL_DIR)."
            )
        version = self.registry.default_version(name) if version is None else version
        api, info = self.registry.load_api(name, version)
        ctx = ModelContext(
            name=name,
            version=version,
            device=self.device,
            max_batch_size=self.policy.max_batch_size,
            model_dir=info.path,
            metadata=info.metadata,
        )
        lm = await self._activate(api, ctx, info)
        if name not in self._routing:
            self._routing[name] = self.registry.routing(name)
        return lm

    async def unload(self, name: str, version: str) -> None:
        """Stop serving one version (its queued requests are answered first).

        Parameters
        ----------
        name, version : str
        """
        lm = self._get(name, version)
        del self._loaded[name][version]
        if not self._loaded[name]:
            del self._loaded[name]
            self._routing.pop(name, None)
        await lm.batcher.aclose(drain=True)

    def set_routing(self, name: str, routing: Routing, *, persist: bool = True) -> None:
        """Change the routing of a loaded model (and store it in the registry).

        Parameters
        ----------
        name : str
        routing : Routing
        persist : bool, default=True
            Also write it to the registry when there is one.
        """
        loaded = self._loaded.get(name)
        if not loaded:
            raise ModelNotFoundError(
                f"No model named {name!r} is loaded; loaded: {', '.join(self._loaded) or 'none'}."
            )
        needed = {
            *routing.weights,
            *([routing.default] if routing.default else []),
            *([routing.shadow] if routing.shadow else []),
        }
        missing = sorted(needed - set(loaded))
        if missing:
            raise InvalidParameterError(
                f"Routing of model {name!r} names version(s) {missing} that are not loaded "
                f"(loaded: {sorted(loaded)}). Load them first."
            )
        self._routing[name] = routing
        if persist and self.registry is not None and name in self.registry.models():
            self.registry.set_routing(name, routing)

    def _get(self, name: str, version: str) -> LoadedModel:
        lm = self._loaded.get(name, {}).get(version)
        if lm is None:
            if name not in self._loaded:
                raise ModelNotFoundError(
                    f"No model named {name!r} is loaded. Loaded models: {', '.join(sorted(self._loaded)) or 'none'}."
                )
            raise ModelNotFoundError(
                f"Model {name!r} has no loaded version {version!r}. Loaded versions: "
                f"{', '.join(sorted(self._loaded[name]))}."
            )
        return lm

    def select(
        self, name: str, version: str | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[LoadedModel, LoadedModel | None]:
        """Choose the version that answers a request, and the shadow that copies it.

        Parameters
        ----------
        name : str
        version : str, optional
            An explicit version (no A/B, no shadow).
        headers : mapping, optional
            Request headers, for sticky routing.

        Returns
        -------
        primary : LoadedModel
        shadow : LoadedModel or None
        """
        versions = self._loaded.get(name)
        if not versions:
            raise ModelNotFoundError(
                f"No model named {name!r} is loaded. Loaded models: {', '.join(sorted(self._loaded)) or 'none'}."
            )
        if version is not None:
            return self._get(name, version), None
        routing = self._routing.get(name) or Routing()
        chosen = None
        if routing.weights:
            key = (
                headers.get(routing.sticky_header) if headers is not None and routing.sticky_header else None
            )
            chosen = routing.choose(key, rand=self._rand.random())
        lm = versions.get(chosen or routing.default or "")
        if lm is None:
            lm = versions[max(versions, key=lambda v: versions[v].loaded_at)]
        shadow = versions.get(routing.shadow) if routing.shadow and routing.shadow != lm.version else None
        return lm, shadow

    def send_shadow(self, shadow: LoadedModel, items: list[Any]) -> None:
        """Copy a request to a shadow version; its answer is discarded, metrics kept.

        Parameters
        ----------
        shadow : LoadedModel
        items : list
        """
        counter = self._shadow_ok
        labels = shadow.extra
        try:
            fut = shadow.batcher.submit(items)
        except (QueueFullError, ServeError):
            counter.labels(outcome="dropped", **labels).inc()
            return
        t0 = time.perf_counter()

        def done(f: Any) -> None:
            if f.cancelled() or f.exception() is not None:
                counter.labels(outcome="error", **labels).inc()
                shadow.metrics.error("shadow")
            else:
                counter.labels(outcome="ok", **labels).inc()
                shadow.metrics.latency.observe(time.perf_counter() - t0)

        fut.add_done_callback(done)

    async def predict(self, name: str, items: list[Any], *, version: str | None = None) -> list[Any]:
        """Decode, batch and encode ``items`` for model ``name`` (no HTTP).

        Parameters
        ----------
        name : str
        items : list
            Raw items as they would appear in ``"inputs"``.
        version : str, optional

        Returns
        -------
        list
            Encoded outputs.
        """
        lm, shadow = self.select(name, version)
        decoded = [lm.api.decode(x, lm.ctx) for x in items]
        if shadow is not None:
            self.send_shadow(shadow, decoded)
        outs = await lm.batcher.submit(decoded)
        for o in outs:
            if isinstance(o, BaseException):
                raise o
        return [lm.api.encode(o, lm.ctx) for o in outs]

    # ------------------------------------------------------------------ state
    @property
    def ready(self) -> bool:
        """Whether the server started, is not closing, and serves at least one model."""
        return self._started and not self._closing and bool(self._loaded)

    def loaded(self) -> dict[str, dict[str, LoadedModel]]:
        """Loaded models: name -> version -> LoadedModel.

        Returns
        -------
        dict
        """
        return {name: dict(v) for name, v in self._loaded.items()}

    def routing(self, name: str) -> Routing:
        """The routing in effect for ``name``.

        Parameters
        ----------
        name : str

        Returns
        -------
        Routing
        """
        if name not in self._loaded:
            raise ModelNotFoundError(f"No model named {name!r} is loaded.")
        return self._routing.get(name) or Routing()

    def stats(self) -> dict[str, Any]:
        """Per model and version counters, for ``GET /stats``.

        Returns
        -------
        dict
        """
        out: dict[str, Any] = {}
        for name, versions in self._loaded.items():
            out[name] = {}
            for version, lm in versions.items():
                s = lm.batcher.stats()
                out[name][version] = {
                    "requests": s.requests,
                    "items": s.items,
                    "batches": s.batches,
                    "errors": s.errors,
                    "rejected": s.rejected,
                    "timeouts": s.timeouts,
                    "queued_items": s.queued_items,
                    "busy": s.busy,
                    "mean_batch_size": round(s.mean_batch_size, 3),
                    "arrival_gap_s": None if s.arrival_gap_s == float("inf") else s.arrival_gap_s,
                    "batch_time_s": s.batch_time_s,
                }
        return out

    async def aclose(self, *, drain: bool = True, timeout_s: float = 30.0) -> None:
        """Drain and stop every model.

        Parameters
        ----------
        drain : bool, default=True
            Finish queued requests first.
        timeout_s : float, default=30.0
            Longest wait per model.
        """
        self._closing = True
        for versions in list(self._loaded.values()):
            for lm in list(versions.values()):
                await lm.batcher.aclose(drain=drain, timeout_s=timeout_s)
