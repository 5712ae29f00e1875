"""The FastAPI application of the model server.

Endpoints (all but ``/health`` need a bearer token when tokens are configured):

=======================================  ====================================================
``POST /v1/models/{name}/predict``       predict; ``?version=`` pins a version (no A/B, no shadow)
``GET /v1/models``                       loaded models, versions and routing
``GET /v1/models/{name}``                one model: versions, inputs, batching, routing
``POST /v1/models/{name}/versions/{v}``  load a registry version without restart
``DELETE /v1/models/{name}/versions/{v}``  unload a version (its queue drains first)
``PUT /v1/models/{name}/routing``        default / weights / sticky_header / shadow
``GET /health``                          liveness (always open)
``GET /ready``                           200 once models are loaded, 503 otherwise
``GET /metrics``                         Prometheus exposition
``GET /stats``                           per model/version counters (JSON)
=======================================  ====================================================

Errors are JSON ``{"error": kind, "message": ..., "error_id": ...}``: 400 malformed
body, 401 token, 404 unknown model/version, 406/415 formats, 413 body too large,
422 invalid input (shape, dtype, NaN), 503 + ``Retry-After`` queue full or
shutting down, 504 deadline, 500 the model raised (the error id is in the log).

The predict route reads the raw body (no pydantic model) and writes bytes:
the lean path is what keeps the server's CPU per request low
(``benchmarks/bench_serve.py``).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from scaleforge.errors import (
    InvalidParameterError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ScaleforgeError,
)
from scaleforge.monitor import metrics
from scaleforge.serve.auth import AuthenticationError, TokenAuth
from scaleforge.serve.batching import BatchPolicy, QueueFullError, ServerClosingError
from scaleforge.serve.registry import ModelRegistry, Routing
from scaleforge.serve.runtime import ModelNotFoundError, ModelServer
from scaleforge.serve.wire import (
    JSON,
    MalformedBodyError,
    NotAcceptableError,
    UnsupportedMediaTypeError,
    choose_response_type,
    decode_body,
    encode_body,
)

if TYPE_CHECKING:
    from scaleforge.settings import Settings

__all__ = ["PayloadTooLargeError", "create_app", "error_response"]

logger = logging.getLogger(__name__)

_DEFAULT_MAX_BODY = 16 * 2**20


_STATUS: tuple[tuple[type[BaseException], int, str], ...] = (
    (AuthenticationError, 401, "unauthorized"),
    (MalformedBodyError, 400, "malformed_body"),
    (UnsupportedMediaTypeError, 415, "unsupported_media_type"),
    (NotAcceptableError, 406, "not_acceptable"),
    (PayloadTooLargeError, 413, "payload_too_large"),
    (ModelNotFoundError, 404, "not_found"),
    (QueueFullError, 503, "overloaded"),
    (ServerClosingError, 503, "unavailable"),
    (RequestTimeoutError, 504, "timeout"),
    (InvalidParameterError, 422, "invalid_input"),
)


_Reply = tuple[int, bytes, str, "dict[str, str] | None"]


def _error_reply(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> _Reply:
    body = orjson.dumps({"error": kind, "message": message, "error_id": uuid.uuid4().hex})
    return status, body, JSON, headers


def error_response(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """Build the JSON error every endpoint returns.

    Parameters
    ----------
    status : int
    kind : str
        Short machine-readable kind (``"invalid_input"``...).
    message : str
        What went wrong and how to fix it.
    headers : mapping, optional

    Returns
    -------
    fastapi.responses.Response
    """
    error_id = uuid.uuid4().hex
    body = orjson.dumps({"error": kind, "message": message, "error_id": error_id})
    return Response(body, status_code=status, media_type=JSON, headers=dict(headers or {}))


def _classify(exc: BaseException) -> tuple[int, str]:
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "internal"


def _exception_reply(exc: BaseException) -> _Reply:
    status, kind = _classify(exc)
    headers: dict[str, str] | None = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, QueueFullError):
        headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
    elif status == 503:
        headers = {"Retry-After": "1"}
    return _error_reply(status, kind, str(exc), headers)


def _exception_response(exc: BaseException) -> Response:
    status, content, media, headers = _exception_reply(exc)
    return Response(content, status_code=status, media_type=media, headers=headers)


class _Predictor:
    """The predict endpoint, independent of how the request arrived (raw ASGI or FastAPI)."""

    def __init__(self, server: ModelServer, authenticate: Callable[[str | None], str], max_body: int) -> None:
        self.server = server
        self.authenticate = authenticate
        self.max_body = max_body

    async def __call__(
        self,
        name: str,
        version: str | None,
        headers: Mapping[str, str],
        read_body: Callable[[int], Awaitable[bytes]],
    ) -> _Reply:
        t0 = time.perf_counter()
        server = self.server
        lm = None
        try:
            self.authenticate(headers.get("authorization"))
            media = choose_response_type(headers.get("accept"))
            lm, shadow = server.select(name, version, headers)
            raw, single = decode_body(await read_body(self.max_body), headers.get("content-type"))
            api, ctx = lm.api, lm.ctx
            try:
                items = [api.decode(x, ctx) for x in raw]
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                if isinstance(exc, InvalidParameterError):
                    raise
                raise InvalidParameterError(f"Invalid input for model {name!r}: {exc}") from exc
            if shadow is not None:
                server.send_shadow(shadow, items)
            fut = lm.batcher.submit(items)
        except Exception as exc:
            if lm is not None:
                status, kind = _classify(exc)
                lm.metrics.count(status)
                lm.metrics.error(kind)
            return _exception_reply(exc)
        try:
            outs = await fut
            for o in outs:
                if isinstance(o, BaseException):  # this item alone failed (see ModelAPI.predict)
                    raise o
            content = encode_body([api.encode(o, ctx) for o in outs], single, media, lm.extra)
        except Exception as exc:
            status, kind = _classify(exc)
            if status == 500:
                reply = _error_reply(500, "model_error", f"Model {name!r} failed on this batch: {exc}")
                logger.error(
                    "model %s version %s failed (error_id=%s): %r",
                    lm.name,
                    lm.version,
                    orjson.loads(reply[1])["error_id"],
                    exc,
                    exc_info=exc,
                )
                kind = "model_error"
            else:
                reply = _exception_reply(exc)
            lm.metrics.count(status)
            lm.metrics.error(kind)
            return reply
        m = lm.metrics
        m.ok.inc()
        m.latency.observe(time.perf_counter() - t0)
        return 200, content, media, None


_PREFIX = "/v1/models/"
_SUFFIX = "/predict"


class _PredictFastPath:
    """Pure ASGI handling of ``POST /v1/models/{name}/predict``.

    Starlette's routing, ``Request`` and dependency solving cost more CPU per
    request than the rest of the predict path together (benchmarks/bench_serve.py:
    a raw ASGI answer is ~3x cheaper than a FastAPI route); every other path goes
    through FastAPI unchanged.
    """

    def __init__(self, app: Any, predictor: _Predictor) -> None:
        self.app = app
        self.predictor = predictor

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
                name = path[len(_PREFIX) : -len(_SUFFIX)]
                if name and "/" not in name:
                    await self._handle(scope, receive, send, name)
                    return
        await self.app(scope, receive, send)

    async def _handle(self, scope: Any, receive: Any, send: Any, name: str) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        version = None
        query: bytes = scope.get("query_string", b"")
        if query:
            found = parse_qs(query.decode("latin-1")).get("version")
            version = found[-1] if found else None

        async def read_body(limit: int) -> bytes:
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise PayloadTooLargeError(
                    f"The request body has {declared} bytes; the limit is {limit}. Send fewer items per request."
                )
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ServerClosingError("The client disconnected before sending the whole body.")
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLargeError(
                            f"The request body exceeds the limit of {limit} bytes. Send fewer items per request."
                        )
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)

        status, content, media, extra = await self.predictor(name, version, headers, read_body)
        raw_headers = [(b"content-type", media.encode()), (b"content-length", str(len(content)).encode())]
        if extra:
            raw_headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": content})


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"The request body has {declared} bytes; the limit is {limit}. Send fewer items per request."
        )
    if declared is not None and declared.isdigit():
        return await request.body()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"The request body exceeds the limit of {limit} bytes. Send fewer items per request."
            )
        chunks.append(chunk)
    return b"".join(chunks)


_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "inputs": {"type": "array", "description": "Items: numbers or nested lists of numbers."},
                    "input": {"description": "One item, answered unwrapped."},
                },
                "example": {"inputs": [[0.1, 0.2, 0.3]]},
            }
        },
        "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
        "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
    },
}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "error_id": {"type": "string"},
    },
    "required": ["error", "message", "error_id"],
}


def _error_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"description": "Error", "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
        for code in codes
    }


def create_app(
    models: Mapping[str, Any] | None = None,
    *,
    registry: ModelRegistry | str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    policy: BatchPolicy | None = None,
    max_queue: int | None = None,
    request_timeout_s: float | None = None,
    worker: str = "thread",
    device: str = "auto",
    tokens: Mapping[str, Any] | None = None,
    max_body_bytes: int = _DEFAULT_MAX_BODY,
    latency_buckets: Sequence[float] | None = None,
    model_options: Mapping[str, Mapping[str, Any]] | None = None,
    freeze_gc: bool = True,
) -> FastAPI:
    """Build the model server's FastAPI application.

    Parameters
    ----------
    models : mapping of str to model, optional
        In-memory models by name (ModelAPI, torch module, operator or callable), version ``"1"``.
    registry : ModelRegistry or path-like, optional
        Load the routed versions of every stored model at startup.
    settings : Settings, optional
        Defaults for batching, queue, timeout and tokens (``get_settings()``).
    policy : BatchPolicy, optional
    max_queue : int, optional
    request_timeout_s : float, optional
    worker : {"thread", "process"}, default="thread"
    device : str, default="auto"
    tokens : mapping of str to str, optional
        Bearer tokens by name; defaults to ``settings.serve.tokens``; empty disables auth.
    max_body_bytes : int, default=16 MiB
        Larger bodies get 413.
    latency_buckets : sequence of float, optional
        Latency histogram buckets in seconds.
    model_options : mapping, optional
        Adapter options per in-memory model name (``{"mlp": {"input_shape": [64]}}``).
    freeze_gc : bool, default=True
        After startup, move every live object to the garbage collector's permanent
        generation (``gc.freeze``), which cuts tail latency under load.

    Returns
    -------
    fastapi.FastAPI
        ``app.state.server`` is the :class:`~scaleforge.serve.runtime.ModelServer`.

    Examples
    --------
    >>> app = create_app({"double": lambda x: 2 * x})
    >>> sorted(app.state.server.policy.__slots__)
    ['max_batch_size', 'max_wait_s']
    """
    if settings is None:
        from scaleforge.settings import get_settings

        settings = get_settings()
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise InvalidParameterError(
            f"The 'max_body_bytes' parameter of create_app must be an int >= 1. Got {max_body_bytes!r} instead."
        )
    server = ModelServer(
        registry=registry,
        policy=policy,
        max_queue=max_queue,
        request_timeout_s=request_timeout_s,
        worker=worker,
        device=device,
        latency_buckets=latency_buckets,
        settings=settings,
    )
    options = model_options or {}
    for name, model in (models or {}).items():
        server.add(name, model, **dict(options.get(name, {})))
    auth = TokenAuth(settings.serve.tokens if tokens is None else tokens)
    client_requests = metrics.counter(
        "scaleforge_serve_client_requests_total", "Requests by token name", ["client"]
    )
    auth_failures = metrics.counter("scaleforge_serve_auth_failures_total", "Requests rejected with 401")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        if freeze_gc:
            # Everything alive now (imports, weights) is permanent: full collections stop
            # rescanning it. p99 at 64 clients fell from ~370-650 ms to ~70-100 ms on the
            # loaded 2-core bench machine (benchmarks/bench_serve.py).
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await server.aclose(drain=True)

    app = FastAPI(
        title="scaleforge model server",
        version="1",
        lifespan=lifespan,
        description="Dynamic batching, versions, A/B routing and uncertainty outputs. See scaleforge.serve.",
    )
    app.state.server = server
    app.state.auth = auth

    def authenticate_header(header: str | None) -> str:
        try:
            name = auth.authenticate(header)
        except AuthenticationError:
            auth_failures.inc()
            raise
        if auth.enabled:
            client_requests.labels(client=name).inc()
        return name

    def authenticate(request: Request) -> str:
        return authenticate_header(request.headers.get("authorization"))

    predictor = _Predictor(server, authenticate_header, max_body_bytes)
    app.add_middleware(_PredictFastPath, predictor=predictor)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return error_response(422, "invalid_request", f"Invalid request parameters: {exc.errors()}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, "http_error", str(exc.detail), exc.headers)

    @app.exception_handler(ScaleforgeError)
    async def _ours(request: Request, exc: Exception) -> Response:
        response = _exception_response(exc)
        if response.status_code >= 500:
            logger.error("error on %s: %r", request.url.path, exc, exc_info=exc)
        return response

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> Response:
        response = _exception_response(exc)
        if response.status_code >= 500:
            logger.error("unhandled error on %s: %r", request.url.path, exc, exc_info=exc)
        return response

    @app.post(
        "/v1/models/{name}/predict",
        summary="Predict with a model",
        openapi_extra={"requestBody": _PREDICT_BODY},
        responses={
            200: {"description": "Outputs (JSON, msgpack or npy by Accept)"},
            **_error_doc(400, 401, 404, 406, 413, 415, 422, 500, 503, 504),
        },
    )
    async def predict(name: str, request: Request, version: str | None = None) -> Response:
        # Normally answered by the _PredictFastPath middleware; this route documents the
        # endpoint in OpenAPI and serves when the app is mounted under another router.
        status, content, media, extra = await predictor(
            name, version, request.headers, functools.partial(_read_body, request)
        )
        return Response(content, status_code=status, media_type=media, headers=extra)

    @app.get("/v1/models", summary="List loaded models")
    async def list_models(request: Request) -> Response:
        authenticate(request)
        out = []
        for name, versions in sorted(server.loaded().items()):
            out.append(
                {"name": name, "versions": sorted(versions), "routing": server.routing(name).to_dict()}
            )
        return Response(orjson.dumps({"models": out}), media_type=JSON)

    @app.get("/v1/models/{name}", summary="Describe a model", responses=_error_doc(401, 404))
    async def describe_model(name: str, request: Request) -> Response:
        authenticate(request)
        versions = server.loaded().get(name)
        if not versions:
            raise ModelNotFoundError(
                f"No model named {name!r} is loaded. Loaded: {', '.join(server.loaded()) or 'none'}."
            )
        stored: list[str] = []
        if server.registry is not None:
            with contextlib.suppress(InvalidParameterError):
                stored = server.registry.versions(name)
        body = {
            "name": name,
            "versions": {v: lm.describe() for v, lm in sorted(versions.items())},
            "stored_versions": stored,
            "routing": server.routing(name).to_dict(),
        }
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type=JSON)

    @app.post(
        "/v1/models/{name}/versions/{version}",
        summary="Load a stored version",
        responses=_error_doc(401, 404, 422),
    )
    async def load_version(name: str, version: str, request: Request) -> Response:
        authenticate(request)
        lm = await server.load(name, version)
        return Response(orjson.dumps({"name": name, "version": version, **lm.describe()}), media_type=JSON)

    @app.delete(
        "/v1/models/{name}/versions/{version}", summary="Unload a version", responses=_error_doc(401, 404)
    )
    async def unload_version(name: str, version: str, request: Request) -> Response:
        authenticate(request)
        await server.unload(name, version)
        return Response(orjson.dumps({"name": name, "version": version, "unloaded": True}), media_type=JSON)

    @app.put(
        "/v1/models/{name}/routing",
        summary="Set default version, A/B weights, sticky header and shadow",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "default": {"type": ["string", "null"]},
                                "weights": {"type": "object"},
                                "sticky_header": {"type": ["string", "null"]},
                                "shadow": {"type": ["string", "null"]},
                            },
                        }
                    }
                },
            }
        },
        responses=_error_doc(400, 401, 404, 422),
    )
    async def set_routing(name: str, request: Request) -> Response:
        authenticate(request)
        try:
            doc = orjson.loads(await _read_body(request, 65536))
        except orjson.JSONDecodeError as exc:
            raise MalformedBodyError(f"The routing body is not valid JSON ({exc}).") from exc
        try:
            routing = Routing.from_dict(doc)
        except (TypeError, AttributeError) as exc:
            raise InvalidParameterError(f"Invalid routing: {exc}") from exc
        server.set_routing(name, routing)
        return Response(orjson.dumps(routing.to_dict()), media_type=JSON)

    @app.get("/health", summary="Liveness")
    async def health() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.get("/ready", summary="Readiness: models loaded", responses=_error_doc(401, 503))
    async def ready(request: Request) -> Response:
        authenticate(request)
        if not server.ready:
            return error_response(
                503,
                "not_ready",
                "No model is loaded yet, or the server is shutting down.",
                {"Retry-After": "1"},
            )
        body = {"status": "ready", "models": {n: sorted(v) for n, v in server.loaded().items()}}
        return Response(orjson.dumps(body), media_type=JSON)

    @app.get("/metrics", summary="Prometheus metrics", responses=_error_doc(401))
    async def prometheus_metrics(request: Request) -> Response:
        authenticate(request)
        mp = metrics.multiprocess_dir()
        return Response(metrics.generate_latest(multiprocess_dir=mp), media_type=metrics.CONTENT_TYPE_LATEST)

    @app.get("/stats", summary="Per model and version counters", responses=_error_doc(401))
    async def stats(request: Request) -> Response:
        authenticate(request)
        return Response(orjson.dumps({"models": server.stats()}), media_type=JSON)

    return app
