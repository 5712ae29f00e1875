"""The job service: a FastAPI app over the job store.

Endpoints (all JSON; bearer-token auth, each token maps to one owner)::

    POST /v1/jobs                 submit (201 created, 200 when the idempotency key matched)
    GET  /v1/jobs                 list yours: ?status=&owner=&limit=&cursor= (paginated)
    GET  /v1/jobs/{id}            one job (404 if it is not yours)
    POST /v1/jobs/{id}/cancel     cancel a queued or running job
    GET  /v1/jobs/{id}/result     the result of a succeeded job (409 before that): JSON, or
                                  ``application/x-npy`` for a single array when the
                                  ``Accept`` header asks for it (406 if it is not one array)
    GET  /v1/workloads            what can be submitted, with parameter JSON Schemas
    GET  /metrics                 Prometheus metrics, including the autoscaling recommendation
    GET  /health                  liveness/readiness (503 when the database is unreachable)

Parameters are validated against the workload's schema before anything is
stored; bodies over ``max_body_bytes`` are refused with 413 before they are
read in full. Another owner's job is indistinguishable from a missing one.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Annotated, Any, Literal, Union

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from scaleforge.errors import InvalidParameterError, JobError, JobNotFoundError, NotAcceptableError
from scaleforge.jobs.models import Job, JobSpec
from scaleforge.jobs.registry import get_workload, list_workloads
from scaleforge.jobs.results import read_result, to_json
from scaleforge.jobs.store import IdempotencyConflictError, SQLJobStore
from scaleforge.jobs.worker import recommend_workers
from scaleforge.monitor.metrics import CONTENT_TYPE_LATEST, counter, gauge, generate_latest
from scaleforge.settings import Settings, get_settings

__all__ = ["DEFAULT_MAX_BODY_BYTES", "NPY_MEDIA_TYPE", "create_app", "tokens_from_settings"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1_000_000  # the default of Settings.jobs.max_body_bytes
#: Media type of a single-array result in NumPy's ``.npy`` format (``numpy.load`` reads it).
NPY_MEDIA_TYPE = "application/x-npy"
ANONYMOUS_OWNER = "local"

_SUBMITTED = counter("scaleforge_jobs_submitted_total", "Job submissions", ["outcome"])
# Figures read from the shared database: "livemax", as in scaleforge.jobs.worker.
_DEPTH = gauge("scaleforge_jobs_queue_depth", "Jobs queued or running", [], multiprocess_mode="livemax")
_QUEUED = gauge("scaleforge_jobs_queued", "Jobs waiting for a worker", [], multiprocess_mode="livemax")
_RECOMMENDED = gauge(
    "scaleforge_jobs_recommended_workers",
    "Workers needed for the current queue depth (autoscaler input)",
    [],
    multiprocess_mode="livemax",
)
_BY_STATUS = gauge("scaleforge_jobs_by_status", "Jobs per status", ["status"], multiprocess_mode="livemax")

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[..., Awaitable[None]],
    ],
    Awaitable[None],
]


class SubmitRequest(BaseModel):
    """Body of ``POST /v1/jobs``; the service narrows it to one model per workload (:func:`submit_model`)."""

    model_config = ConfigDict(extra="forbid")

    workload: str = Field(min_length=1, max_length=200, description="A name from GET /v1/workloads.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Validated against the workload's schema."
    )
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first.")
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    max_attempts: int | None = Field(None, ge=1, le=100)


class _SubmitBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first.")
    idempotency_key: str | None = Field(None, min_length=1, max_length=200, description="Makes retries safe.")
    max_attempts: int | None = Field(None, ge=1, le=100)


def _required_fields(schema: type[BaseModel]) -> bool:
    return any(f.is_required() for f in schema.model_fields.values())


def submit_model() -> Any:
    """The body type of ``POST /v1/jobs``: a union over the registered workloads, tagged by ``workload``.

    Each member pins ``workload`` to one name and ``params`` to that
    workload's schema, so the OpenAPI document states exactly what each
    workload accepts and FastAPI rejects anything else with 422.

    Returns
    -------
    type
    """
    members: list[Any] = []
    for entry in list_workloads():
        params_field: Any = (
            (entry.schema, ...)
            if _required_fields(entry.schema)
            else (entry.schema, Field(default_factory=entry.schema))
        )
        safe = "".join(ch if ch.isalnum() else "_" for ch in entry.name)
        tag: Any = Literal[entry.name]
        members.append(
            create_model(
                f"Submit_{safe}",
                __base__=_SubmitBase,
                workload=(tag, Field(description=entry.description or entry.name)),
                params=params_field,
            )
        )
    if len(members) == 1:
        return members[0]
    return Annotated[Union[tuple(members)], Field(discriminator="workload")]  # noqa: UP007


class JobOut(BaseModel):
    """A job as the service returns it."""

    id: str
    workload: str
    params: dict[str, Any]
    priority: int
    status: str
    attempts: int
    max_attempts: int
    owner: str
    idempotency_key: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    lease_expires_at: float | None
    worker_id: str | None
    result_ref: str | None
    error: str | None


class JobPage(BaseModel):
    """One page of ``GET /v1/jobs``."""

    items: list[JobOut]
    next_cursor: str | None


class ResultOut(BaseModel):
    """Body of ``GET /v1/jobs/{id}/result``."""

    id: str
    status: str
    result_ref: str
    result: Any


class WorkloadOut(BaseModel):
    """One entry of ``GET /v1/workloads``."""

    name: str
    description: str
    builtin: bool
    parameters: dict[str, Any]


class WorkloadList(BaseModel):
    """Body of ``GET /v1/workloads``."""

    items: list[WorkloadOut]


class Health(BaseModel):
    """Body of ``GET /health``."""

    status: str
    database: str


class ErrorOut(BaseModel):
    """Body of every error response."""

    detail: Any


def tokens_from_settings(settings: Settings | None = None) -> dict[str, str]:
    """Map bearer token -> owner from ``Settings.jobs.tokens`` (owner -> token).

    Parameters
    ----------
    settings : Settings, optional

    Returns
    -------
    dict of str to str
    """
    settings = settings or get_settings()
    return {secret.get_secret_value(): owner for owner, secret in settings.jobs.tokens.items()}


class _BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413 (streamed bodies too)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[..., Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        # No (or a small) Content-Length: read the body here, up to the limit, then replay it.
        messages: list[MutableMapping[str, Any]] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> MutableMapping[str, Any]:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    async def _reject(self, scope: Any, receive: Any, send: Any) -> None:
        response = JSONResponse(
            {
                "detail": f"The request body is larger than the limit of {self.max_bytes} bytes. Send smaller "
                "parameters (put large inputs in files or the cache and pass their path), or raise "
                "max_body_bytes of the service."
            },
            status_code=413,
        )
        await response(scope, receive, send)


def _wants_npy(accept: str | None) -> bool:
    """True if the Accept header prefers ``.npy`` to JSON (exact type, highest q wins; JSON on ties)."""
    if not accept:
        return False
    best_npy = best_json = -1.0
    for part in accept.split(","):
        media, *options = (p.strip() for p in part.split(";"))
        q = 1.0
        for opt in options:
            name, _, val = opt.partition("=")
            if name.strip() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == NPY_MEDIA_TYPE:
            best_npy = max(best_npy, q)
        elif media in ("application/json", "application/*", "*/*"):
            best_json = max(best_json, q)
    return best_npy > 0 and best_npy > best_json


def _job_out(job: Job) -> dict[str, Any]:
    return job.to_dict()


def create_app(
    store: SQLJobStore | None = None,
    *,
    tokens: Mapping[str, str] | None = None,
    max_body_bytes: int | None = None,
    worker_concurrency: int = 1,
) -> FastAPI:
    """Build the job service.

    Parameters
    ----------
    store : SQLJobStore, optional
        Defaults to one opened at ``Settings.jobs.database_url``.
    tokens : mapping of str to str, optional
        Bearer token -> owner. Defaults to ``Settings.jobs.tokens`` (owner ->
        token). With no tokens at all, auth is off and every caller is owner
        ``"local"`` (for a laptop; a warning is logged).
    max_body_bytes : int, optional
        Larger request bodies get 413; defaults to ``Settings.jobs.max_body_bytes``
        (1 MB, ``SCALEFORGE_JOBS__MAX_BODY_BYTES``).
    worker_concurrency : int, default=1
        Jobs per worker, for the ``scaleforge_jobs_recommended_workers`` metric.

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    InvalidParameterError
        For a bad argument.

    Notes
    -----
    The body schema of ``POST /v1/jobs`` is built from the workloads registered
    when the app is created: import the modules that call
    :func:`~scaleforge.jobs.registry.register_function` first (the CLI's
    ``--import`` does).
    """
    if max_body_bytes is None:
        max_body_bytes = get_settings().jobs.max_body_bytes
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1024:
        raise InvalidParameterError(
            f"The 'max_body_bytes' parameter of create_app must be an int >= 1024. Got {max_body_bytes!r} "
            "(argument or Settings.jobs.max_body_bytes)."
        )
    if (
        isinstance(worker_concurrency, bool)
        or not isinstance(worker_concurrency, int)
        or worker_concurrency < 1
    ):
        raise InvalidParameterError(
            f"The 'worker_concurrency' parameter of create_app must be an int >= 1. Got {worker_concurrency!r}."
        )
    token_map = dict(tokens_from_settings() if tokens is None else tokens)
    for token, owner in token_map.items():
        if not token or not isinstance(owner, str) or not owner:
            raise InvalidParameterError("Every job service token needs a non-empty secret and owner name.")
    if not token_map:
        logger.warning(
            "job service started without tokens: authentication is off (owner %r)", ANONYMOUS_OWNER
        )
    db = store if store is not None else SQLJobStore()

    app = FastAPI(
        title="scaleforge jobs",
        version="1",
        description="Submit runs of scaleforge workloads and registered functions; track and fetch them.",
    )
    app.state.store = db
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)

    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    }

    def owner_of(authorization: str | None = Header(None, description="Bearer <token>")) -> str:
        if not token_map:
            return ANONYMOUS_OWNER
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and presented:
            for token, owner in token_map.items():
                if hmac.compare_digest(token.encode(), presented.strip().encode()):
                    return owner
        raise HTTPException(
            status_code=401,
            detail="Missing or unknown bearer token: send 'Authorization: Bearer <token>' with a token from "
            "Settings.jobs.tokens.",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def not_found(exc: JobNotFoundError) -> HTTPException:
        return HTTPException(status_code=404, detail=str(exc))

    @app.exception_handler(JobError)
    async def _job_error(request: Request, exc: JobError) -> JSONResponse:
        logger.error("job store error on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": f"The job database failed: {exc}"}, status_code=503)

    def submit_job(
        body: Any,
        response: Response,
        owner: str = Depends(owner_of),
        idempotency_key: str | None = Header(None, min_length=1, max_length=200),
    ) -> dict[str, Any]:
        key = body.idempotency_key or idempotency_key
        try:
            entry = get_workload(body.workload)
            params = entry.validate(body.params.model_dump(mode="json"))
            spec = JobSpec(entry.name, params, body.priority, key, body.max_attempts)
            job, created = db.submit(spec, owner=owner)
        except InvalidParameterError as exc:
            _SUBMITTED.labels(outcome="invalid").inc()
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except IdempotencyConflictError as exc:
            _SUBMITTED.labels(outcome="conflict").inc()
            raise HTTPException(status_code=409, detail=str(exc)) from exc
        _SUBMITTED.labels(outcome="created" if created else "duplicate").inc()
        if not created:
            response.status_code = 200
        return _job_out(job)

    # The body type is built at runtime from the registry: set it on the function itself,
    # since this module's string annotations cannot name a local type.
    submit_job.__annotations__["body"] = submit_model()
    app.post(
        "/v1/jobs",
        response_model=JobOut,
        status_code=201,
        responses={**errors, 200: {"model": JobOut}, 409: {"model": ErrorOut}, 413: {"model": ErrorOut}},
    )(submit_job)

    @app.get("/v1/jobs", response_model=JobPage, responses={**errors, 403: {"model": ErrorOut}})
    def list_jobs(
        owner: str = Depends(owner_of),
        status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = Query(None),
        owner_filter: str | None = Query(None, alias="owner", description="Must be your own owner name."),
        limit: int = Query(50, ge=1, le=500),
        cursor: str | None = Query(
            None, pattern="^[0-9a-f]{32}$", description="next_cursor of the previous page."
        ),
    ) -> dict[str, Any]:
        if owner_filter is not None and owner_filter != owner:
            raise HTTPException(
                status_code=403,
                detail="You can only list your own jobs: drop 'owner' or pass your own owner name.",
            )
        try:
            jobs = db.list_jobs(owner=owner, status=status, limit=limit + 1, after=cursor)
        except InvalidParameterError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except JobNotFoundError as exc:
            raise not_found(exc) from exc
        more = len(jobs) > limit
        jobs = jobs[:limit]
        return {"items": [_job_out(j) for j in jobs], "next_cursor": jobs[-1].id if more else None}

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, responses=errors)
    def get_job(job_id: str, owner: str = Depends(owner_of)) -> dict[str, Any]:
        try:
            return _job_out(db.get(job_id, owner=owner))
        except JobNotFoundError as exc:
            raise not_found(exc) from exc

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobOut, responses=errors)
    def cancel_job(job_id: str, owner: str = Depends(owner_of)) -> dict[str, Any]:
        try:
            return _job_out(db.cancel(job_id, owner=owner))
        except JobNotFoundError as exc:
            raise not_found(exc) from exc

    @app.get(
        "/v1/jobs/{job_id}/result",
        response_model=ResultOut,
        responses={
            **errors,
            200: {"content": {NPY_MEDIA_TYPE: {}}, "description": "JSON, or one array as .npy"},
            406: {"model": ErrorOut},
            409: {"model": ErrorOut},
        },
    )
    def job_result(
        job_id: str,
        owner: str = Depends(owner_of),
        accept: str | None = Header(None, description=f"application/json (default) or {NPY_MEDIA_TYPE}"),
    ) -> Any:
        try:
            job = db.get(job_id, owner=owner)
        except JobNotFoundError as exc:
            raise not_found(exc) from exc
        if job.status != "succeeded" or job.result_ref is None:
            why = f": {job.error}" if job.error else ""
            raise HTTPException(
                status_code=409,
                detail=f"Job {job_id} has no result: it is {job.status}{why}. Poll GET /v1/jobs/{job_id} until "
                "its status is 'succeeded'.",
            )
        value = read_result(job.result_ref)
        if _wants_npy(accept):
            import io

            import numpy as np

            if not isinstance(value, np.ndarray) or value.dtype.hasobject:
                raise HTTPException(
                    status_code=406,
                    detail=f"The result of job {job_id} is a {type(value).__name__}, not a single numeric array, "
                    f"so it cannot be sent as {NPY_MEDIA_TYPE}. Ask for application/json instead.",
                )
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=False)
            return Response(buf.getvalue(), media_type=NPY_MEDIA_TYPE)
        try:
            body = to_json(value)
        except NotAcceptableError as exc:
            raise HTTPException(status_code=406, detail=str(exc)) from exc
        return {"id": job.id, "status": job.status, "result_ref": job.result_ref, "result": body}

    @app.get("/v1/workloads", response_model=WorkloadList, responses={401: {"model": ErrorOut}})
    def workloads(owner: str = Depends(owner_of)) -> dict[str, Any]:
        return {"items": [w.describe() for w in list_workloads()]}

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    def health() -> Any:
        try:
            db.counts()
        except JobError:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return {"status": "ok", "database": "ok"}

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def metrics() -> Response:
        try:
            counts = db.counts()
        except JobError:
            counts = None
        if counts is not None:
            depth = counts["queued"] + counts["running"]
            _DEPTH.set(depth)
            _QUEUED.set(counts["queued"])
            _RECOMMENDED.set(recommend_workers(depth, worker_concurrency))
            for status, n in counts.items():
                _BY_STATUS.labels(status=status).set(n)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
