"""Serve models over HTTP with dynamic batching, versions, A/B routing, auth and backpressure.

The contract is :class:`ModelAPI` (``setup``/``decode``/``predict``/``encode``,
each receiving one :class:`ModelContext`); adapters wrap callables, torch
modules and probabilistic operators; :class:`DynamicBatcher` groups requests;
:func:`create_app` builds the FastAPI app and :func:`run` serves it::

    from scaleforge.serve import create_app, run
    run(create_app({"double": lambda x: 2 * x}), port=8000)

Names are loaded lazily: importing this package imports neither FastAPI nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaleforge._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "BatchPolicy": "scaleforge.serve.batching",
    "CallableAPI": "scaleforge.serve.adapters",
    "DynamicBatcher": "scaleforge.serve.batching",
    "ModelAPI": "scaleforge.serve.base",
    "ModelContext": "scaleforge.serve.base",
    "ModelRegistry": "scaleforge.serve.registry",
    "ModelServer": "scaleforge.serve.runtime",
    "OperatorAPI": "scaleforge.serve.adapters",
    "QueueFullError": "scaleforge.serve.batching",
    "Routing": "scaleforge.serve.registry",
    "TokenAuth": "scaleforge.serve.auth",
    "TorchAPI": "scaleforge.serve.adapters",
    "as_model_api": "scaleforge.serve.adapters",
    "create_app": "scaleforge.serve.app",
    "deploy_ray": "scaleforge.serve.server",
    "run": "scaleforge.serve.server",
    "serve_in_thread": "scaleforge.serve.server",
}

__all__ = [
    "BatchPolicy",
    "CallableAPI",
    "DynamicBatcher",
    "ModelAPI",
    "ModelContext",
    "ModelRegistry",
    "ModelServer",
    "OperatorAPI",
    "QueueFullError",
    "Routing",
    "TokenAuth",
    "TorchAPI",
    "as_model_api",
    "create_app",
    "deploy_ray",
    "run",
    "serve_in_thread",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:
    from scaleforge.serve.adapters import CallableAPI, OperatorAPI, TorchAPI, as_model_api
    from scaleforge.serve.app import create_app
    from scaleforge.serve.auth import TokenAuth
    from scaleforge.serve.base import ModelAPI, ModelContext
    from scaleforge.serve.batching import BatchPolicy, DynamicBatcher, QueueFullError
    from scaleforge.serve.registry import ModelRegistry, Routing
    from scaleforge.serve.runtime import ModelServer
    from scaleforge.serve.server import deploy_ray, run
